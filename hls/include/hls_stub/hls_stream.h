// hilnas stand-in for Vitis HLS's <hls_stream.h>, for C simulation with g++ only.
//
// Why: in C simulation a DATAFLOW region runs its processes one after another, so a FIFO
// must hold a whole feature map; an unbounded std::deque does. Reading an empty stream is
// the C-simulation symptom of a producer/consumer mismatch (a hardware deadlock), so it
// aborts with the stream's name instead of returning garbage.
#ifndef HILNAS_HLS_STUB_HLS_STREAM_H
#define HILNAS_HLS_STUB_HLS_STREAM_H

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>

namespace hls {
template <typename T>
class stream {
 public:
  stream() : name_("unnamed") {}
  explicit stream(const char* name) : name_(name) {}
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  void write(const T& value) { q_.push_back(value); }
  T read() {
    if (q_.empty()) {
      std::fprintf(stderr, "hls::stream '%s': read from an empty stream (deadlock in hardware)\n",
                   name_.c_str());
      std::abort();
    }
    T value = q_.front();
    q_.pop_front();
    return value;
  }
  void read(T& value) { value = read(); }
  bool read_nb(T& value) {
    if (q_.empty()) return false;
    value = read();
    return true;
  }
  bool write_nb(const T& value) { write(value); return true; }
  bool empty() const { return q_.empty(); }
  bool full() const { return false; }
  std::size_t size() const { return q_.size(); }
  stream& operator<<(const T& value) { write(value); return *this; }
  stream& operator>>(T& value) { value = read(); return *this; }

 private:
  std::string name_;
  std::deque<T> q_;
};
}  // namespace hls

#endif  // HILNAS_HLS_STUB_HLS_STREAM_H
