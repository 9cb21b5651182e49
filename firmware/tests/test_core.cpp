// Unit tests of the portable core: CRC, SHA-256, frames, every command against a fake
// interpreter, and a fuzz test of the frame parser.
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fakes.h"
#include "hilnas_agent.h"
#include "hilnas_crc16.h"
#include "hilnas_frame.h"
#include "hilnas_sha256.h"
#include "test_util.h"

int g_failures = 0;
int g_checks = 0;

using namespace hilnas;

namespace {

std::vector<uint8_t> frame(uint8_t c, uint8_t seq, const std::vector<uint8_t>& p) {
  std::vector<uint8_t> out(kMaxFrame);
  size_t n = encode_frame(c, seq, p.data(), p.size(), out.data(), out.size());
  out.resize(n);
  return out;
}

struct Reply {
  uint8_t cmd = 0, seq = 0;
  std::vector<uint8_t> payload;
};

// Parse every frame the fake board wrote.
std::vector<Reply> parse_all(const std::vector<uint8_t>& bytes) {
  std::vector<Reply> out;
  FrameParser p;
  for (uint8_t b : bytes) {
    if (p.feed(b, 0) == FrameParser::Event::kFrame) {
      Reply r;
      r.cmd = p.command();
      r.seq = p.seq();
      r.payload.assign(p.payload(), p.payload() + p.length());
      out.push_back(r);
    }
  }
  return out;
}

const char kOps[] = "CONV_2D,FULLY_CONNECTED";
const BoardConfig kConfig = {"nano33ble", "nRF52840 Cortex-M4F", 64000000, 262144, 1048576,
                             "test-tflm", kOps, "0.1.0", 100};

struct Rig {
  FakeHal hal;
  RamStore store{4096};
  FakeRunner runner;
  Agent agent{hal, store, runner, kConfig};
  uint8_t seq = 0;

  Reply call(uint8_t c, const std::vector<uint8_t>& p) {
    ++seq;
    hal.tx.clear();
    for (uint8_t b : frame(c, seq, p)) hal.rx.push_back(b);
    agent.poll();
    std::vector<Reply> r = parse_all(hal.tx);
    CHECK_EQ(r.size(), 1u);
    if (r.empty()) return Reply();
    CHECK_EQ(r[0].seq, seq);
    return r[0];
  }
};

std::vector<uint8_t> u32v(uint32_t v) {
  std::vector<uint8_t> o(4);
  put_u32(o.data(), v);
  return o;
}

std::vector<uint8_t> sha_of(const std::vector<uint8_t>& d) {
  Sha256 s;
  s.update(d.data(), d.size());
  std::vector<uint8_t> o(32);
  s.finish(o.data());
  return o;
}

std::vector<uint8_t> cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

bool is_error(const Reply& r, ErrorCode code) {
  return r.cmd == cmd::kError && !r.payload.empty() && r.payload[0] == static_cast<uint8_t>(code);
}

std::vector<uint8_t> test_model(size_t n) {
  std::vector<uint8_t> m(n);
  for (size_t i = 0; i < n; ++i) m[i] = static_cast<uint8_t>(i * 7 + 3);
  return m;
}

void upload(Rig& rig, const std::vector<uint8_t>& m, size_t chunk) {
  Reply r = rig.call(cmd::kUploadBegin, cat(u32v(static_cast<uint32_t>(m.size())), sha_of(m)));
  CHECK_EQ(r.cmd, cmd::kUploadBegin | cmd::kReplyBit);
  for (size_t off = 0; off < m.size(); off += chunk) {
    size_t n = std::min(chunk, m.size() - off);
    std::vector<uint8_t> p = cat(u32v(static_cast<uint32_t>(off)),
                                 std::vector<uint8_t>(m.begin() + off, m.begin() + off + n));
    r = rig.call(cmd::kUploadChunk, p);
    CHECK_EQ(get_u32(r.payload.data()), off + n);
  }
  r = rig.call(cmd::kUploadEnd, {});
  CHECK_EQ(r.cmd, cmd::kUploadEnd | cmd::kReplyBit);
}

// ---------------------------------------------------------------------------- primitives
void test_crc16_check_value() {
  const char* s = "123456789";
  CHECK_EQ(crc16(reinterpret_cast<const uint8_t*>(s), 9), 0x29B1);
  CHECK_EQ(crc16(nullptr, 0), 0xFFFF);
  // Incremental == one shot.
  uint16_t a = crc16_update(crc16(reinterpret_cast<const uint8_t*>(s), 4),
                            reinterpret_cast<const uint8_t*>(s) + 4, 5);
  CHECK_EQ(a, 0x29B1);
}

std::string hexs(const uint8_t* d, size_t n) {
  std::string o;
  char b[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", d[i]);
    o += b;
  }
  return o;
}

void test_sha256_vectors() {
  uint8_t out[32];
  Sha256 s;
  s.finish(out);
  CHECK(hexs(out, 32) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  s.reset();
  s.update(reinterpret_cast<const uint8_t*>("abc"), 3);
  s.finish(out);
  CHECK(hexs(out, 32) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 1,000,000 x 'a' fed in odd pieces exercises the block buffering.
  s.reset();
  std::vector<uint8_t> a(999, 'a');
  size_t done = 0;
  while (done < 1000000) {
    size_t n = std::min<size_t>(a.size() - (done % 7), 1000000 - done);
    s.update(a.data(), n);
    done += n;
  }
  s.finish(out);
  CHECK(hexs(out, 32) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

void test_frame_roundtrip() {
  std::vector<uint8_t> p = {1, 2, 3, kSync0, kSync1, 0};
  std::vector<uint8_t> f = frame(0x22, 77, p);
  CHECK_EQ(f.size(), kHeaderSize + p.size() + kCrcSize);
  CHECK_EQ(f[0], kSync0);
  CHECK_EQ(get_u16(&f[2]), 6);
  FrameParser parser;
  FrameParser::Event ev = FrameParser::Event::kNone;
  for (uint8_t b : f) ev = parser.feed(b, 0);
  CHECK(ev == FrameParser::Event::kFrame);
  CHECK_EQ(parser.command(), 0x22);
  CHECK_EQ(parser.seq(), 77);
  CHECK(std::vector<uint8_t>(parser.payload(), parser.payload() + parser.length()) == p);
  // Empty and maximal payloads.
  std::vector<uint8_t> big(kMaxPayload, 0xA5);
  for (const auto& payload : {std::vector<uint8_t>(), big}) {
    f = frame(1, 2, payload);
    for (uint8_t b : f) ev = parser.feed(b, 0);
    CHECK(ev == FrameParser::Event::kFrame);
    CHECK_EQ(parser.length(), payload.size());
  }
  // Too long a payload is refused by the encoder.
  std::vector<uint8_t> out(kMaxFrame + 10);
  CHECK_EQ(encode_frame(1, 1, out.data(), kMaxPayload + 1, out.data(), out.size()), 0u);
  // Golden bytes shared with the Python codec's test.
  f = frame(0x02, 1, {});
  CHECK(hexs(f.data(), f.size()) == "a55a0000020183f2");
}

void test_parser_resync_and_errors() {
  FrameParser parser;
  std::vector<uint8_t> good = frame(0x01, 5, {9, 9});
  // Garbage (including a lone sync byte) before a frame.
  std::vector<uint8_t> stream = {0x00, 0xA5, 0x13, 0xA5, 0xA5};
  stream.insert(stream.end(), good.begin(), good.end());
  int frames = 0;
  for (uint8_t b : stream) frames += parser.feed(b, 0) == FrameParser::Event::kFrame;
  CHECK_EQ(frames, 1);
  // A corrupted payload byte is a CRC error that still reports the header's SEQ.
  std::vector<uint8_t> bad = good;
  bad[6] ^= 0x40;
  FrameParser::Event ev = FrameParser::Event::kNone;
  for (uint8_t b : bad) ev = parser.feed(b, 0);
  CHECK(ev == FrameParser::Event::kBadCrc);
  CHECK_EQ(parser.seq(), 5);
  // LEN over the maximum.
  std::vector<uint8_t> longf = {kSync0, kSync1, 0xFF, 0xFF};
  for (uint8_t b : longf) ev = parser.feed(b, 0);
  CHECK(ev == FrameParser::Event::kTooLong);
  // A partial frame followed by silence is dropped, then the next frame parses.
  for (size_t i = 0; i < 7; ++i) parser.feed(good[i], 100);
  CHECK(parser.poll(100 + kInterByteTimeoutUs - 1) == FrameParser::Event::kNone);
  CHECK(parser.poll(100 + kInterByteTimeoutUs) == FrameParser::Event::kTruncated);
  CHECK(parser.header_seen());
  frames = 0;
  for (uint8_t b : good) frames += parser.feed(b, 200000) == FrameParser::Event::kFrame;
  CHECK_EQ(frames, 1);
  // A byte after a long gap restarts the hunt even without a poll().
  for (size_t i = 0; i < 4; ++i) parser.feed(good[i], 300000);
  frames = 0;
  for (uint8_t b : good) frames += parser.feed(b, 300000 + kInterByteTimeoutUs) ==
                                   FrameParser::Event::kFrame;
  CHECK_EQ(frames, 1);
}

void test_parser_fuzz() {
  // Random bytes, random truncations and bit flips around valid frames: the parser must
  // never crash (sanitizers watch), never report a frame whose bytes it did not receive
  // intact, and always recover to parse the valid frames that follow.
  std::mt19937 rng(1234);
  FrameParser parser;
  int delivered = 0, sent = 0, false_frames = 0;
  uint32_t now = 0;
  for (int round = 0; round < 20000; ++round) {
    int kind = static_cast<int>(rng() % 4);
    std::vector<uint8_t> p(rng() % 64);
    for (auto& b : p) b = static_cast<uint8_t>(rng());
    std::vector<uint8_t> f = frame(0x11, static_cast<uint8_t>(round), p);
    if (kind == 0) {  // pure garbage
      f.resize(rng() % 80);
      for (auto& b : f) b = static_cast<uint8_t>(rng());
    } else if (kind == 1) {  // truncated frame, then silence
      f.resize(rng() % f.size());
    } else if (kind == 2) {  // one bit flipped
      f[rng() % f.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    } else {
      ++sent;
    }
    for (uint8_t b : f) {
      if (parser.feed(b, now) == FrameParser::Event::kFrame) {
        if (kind == 3 && parser.seq() == static_cast<uint8_t>(round) &&
            parser.length() == p.size() &&
            (p.empty() || std::memcmp(parser.payload(), p.data(), p.size()) == 0)) {
          ++delivered;
        } else {
          ++false_frames;
        }
      }
      now += 10;
    }
    now += kInterByteTimeoutUs;  // a pause between bursts, as a host retry would leave
    parser.poll(now);
  }
  CHECK_EQ(delivered, sent);
  // A 16-bit CRC lets about 1 in 65536 random frames through; garbage rounds are ~5000.
  CHECK(false_frames <= 2);
  std::printf("    fuzz: %d valid frames delivered, %d false frames from garbage\n", delivered,
              false_frames);
}

// ------------------------------------------------------------------------------ commands
void test_ready_and_ping_and_info() {
  Rig rig;
  rig.agent.begin();
  std::vector<Reply> r = parse_all(rig.hal.tx);
  CHECK_EQ(r.size(), 1u);
  CHECK_EQ(r[0].cmd, cmd::kReady);
  CHECK_EQ(r[0].payload[0], kProtocolMajor);
  CHECK(std::string(r[0].payload.begin() + 2, r[0].payload.end()) == "nano33ble");
  Reply p = rig.call(cmd::kPing, {1, 2, 3});
  CHECK_EQ(p.cmd, cmd::kPing | cmd::kReplyBit);
  CHECK(p.payload == std::vector<uint8_t>({1, 2, 3}));
  Reply info = rig.call(cmd::kInfo, {});
  std::string text(info.payload.begin(), info.payload.end());
  CHECK(text.find("proto=1.0\n") != std::string::npos);
  CHECK(text.find("clock_hz=64000000\n") != std::string::npos);
  CHECK(text.find("model_slot=4096\n") != std::string::npos);
  CHECK(text.find("arena=196608\n") != std::string::npos);
  CHECK(text.find("ops=CONV_2D,FULLY_CONNECTED\n") != std::string::npos);
  CHECK(text.find("latency_source=measured\n") != std::string::npos);
  CHECK(text.find("model_sha=\n") != std::string::npos);
  // Paged INFO: two pages put together are the whole text.
  Reply a = rig.call(cmd::kInfo, {0, 0, 40, 0});
  Reply b = rig.call(cmd::kInfo, {40, 0, 0xFF, 0x03});
  CHECK_EQ(a.payload.size(), 40u);
  CHECK(std::string(a.payload.begin(), a.payload.end()) + std::string(b.payload.begin(), b.payload.end()) == text);
  CHECK(is_error(rig.call(cmd::kInfo, {1}), ErrorCode::kBadPayload));
  Reply unk = rig.call(0x55, {});
  CHECK(is_error(unk, ErrorCode::kUnknownCommand));
  CHECK_EQ(unk.payload[1], 0x55);
}

void test_upload_happy_path_and_dedupe() {
  Rig rig;
  std::vector<uint8_t> m = test_model(1000);
  upload(rig, m, 300);
  CHECK(rig.store.valid);
  CHECK(std::memcmp(rig.store.buf.data(), m.data(), m.size()) == 0);
  // INFO now names the held model.
  Reply info = rig.call(cmd::kInfo, {});
  std::string text(info.payload.begin(), info.payload.end());
  std::vector<uint8_t> sha = sha_of(m);
  CHECK(text.find("model_sha=" + hexs(sha.data(), 32)) != std::string::npos);
  // The same model again: present, no transfer.
  Reply r = rig.call(cmd::kUploadBegin, cat(u32v(1000), sha));
  CHECK_EQ(r.payload[0], 1);
  CHECK_EQ(get_u32(&r.payload[1]), 1000u);
  // A resent END after a lost reply still answers with the hash.
  r = rig.call(cmd::kUploadEnd, {});
  CHECK(r.payload == sha);
}

void test_upload_out_of_order_and_duplicates() {
  Rig rig;
  std::vector<uint8_t> m = test_model(600);
  rig.call(cmd::kUploadBegin, cat(u32v(600), sha_of(m)));
  auto chunk = [&](uint32_t off, uint32_t n) {
    return rig.call(cmd::kUploadChunk,
                    cat(u32v(off), std::vector<uint8_t>(m.begin() + off, m.begin() + off + n)));
  };
  CHECK_EQ(get_u32(chunk(0, 200).payload.data()), 200u);
  CHECK_EQ(get_u32(chunk(0, 200).payload.data()), 200u);    // duplicate: ignored
  CHECK_EQ(get_u32(chunk(400, 200).payload.data()), 200u);  // gap: ignored, board wants 200
  Reply early = rig.call(cmd::kUploadEnd, {});
  CHECK(is_error(early, ErrorCode::kUploadIncomplete));
  CHECK_EQ(get_u32(chunk(200, 200).payload.data()), 400u);
  CHECK_EQ(get_u32(chunk(400, 200).payload.data()), 600u);
  Reply past = rig.call(cmd::kUploadChunk, cat(u32v(590), std::vector<uint8_t>(20, 0)));
  CHECK(is_error(past, ErrorCode::kBadPayload));
  CHECK_EQ(rig.call(cmd::kUploadEnd, {}).cmd, cmd::kUploadEnd | cmd::kReplyBit);
}

void test_upload_errors() {
  Rig rig;
  std::vector<uint8_t> m = test_model(500);
  CHECK(is_error(rig.call(cmd::kUploadChunk, cat(u32v(0), {1})), ErrorCode::kWrongState));
  CHECK(is_error(rig.call(cmd::kUploadBegin, {1, 2}), ErrorCode::kBadPayload));
  Reply big = rig.call(cmd::kUploadBegin, cat(u32v(5000), sha_of(m)));
  CHECK(is_error(big, ErrorCode::kModelTooLarge));
  std::string detail(big.payload.begin() + 2, big.payload.end());
  CHECK(detail.find("4096") != std::string::npos);
  // Wrong hash: mismatch, and the model is not kept.
  std::vector<uint8_t> wrong = sha_of(m);
  wrong[0] ^= 1;
  rig.call(cmd::kUploadBegin, cat(u32v(500), wrong));
  rig.call(cmd::kUploadChunk, cat(u32v(0), m));
  CHECK(is_error(rig.call(cmd::kUploadEnd, {}), ErrorCode::kHashMismatch));
  CHECK(!rig.store.valid);
  CHECK(is_error(rig.call(cmd::kAllocate, {}), ErrorCode::kNoModel));
  // Flash failure.
  rig.call(cmd::kUploadBegin, cat(u32v(500), sha_of(m)));
  rig.store.fail_write = true;
  CHECK(is_error(rig.call(cmd::kUploadChunk, cat(u32v(0), m)), ErrorCode::kFlashFailed));
}

void test_allocate() {
  Rig rig;
  CHECK(is_error(rig.call(cmd::kAllocate, {}), ErrorCode::kNoModel));
  upload(rig, test_model(700), 700);
  rig.runner.next_status = RunnerStatus::kUnsupportedOp;
  Reply r = rig.call(cmd::kAllocate, {});
  CHECK(is_error(r, ErrorCode::kUnsupportedOp));
  CHECK(std::string(r.payload.begin() + 2, r.payload.end()) == "op LSTM");
  rig.runner.next_status = RunnerStatus::kArenaTooSmall;
  CHECK(is_error(rig.call(cmd::kAllocate, {}), ErrorCode::kArenaTooSmall));
  rig.runner.next_status = RunnerStatus::kModelInvalid;
  CHECK(is_error(rig.call(cmd::kAllocate, {}), ErrorCode::kModelInvalid));
  rig.runner.next_status = RunnerStatus::kOk;
  r = rig.call(cmd::kAllocate, {});
  CHECK_EQ(r.cmd, cmd::kAllocate | cmd::kReplyBit);
  CHECK_EQ(get_u32(&r.payload[0]), 1400u);
  CHECK_EQ(get_u32(&r.payload[4]), 196608u);
  CHECK_EQ(r.payload[8], 1);
  CHECK_EQ(r.payload[9], 1);
  // input: type, bytes, ndim, dims, scale, zp
  CHECK_EQ(r.payload[10], 9);
  CHECK_EQ(get_u32(&r.payload[11]), 300u);
  CHECK_EQ(r.payload[15], 3);
  CHECK_EQ(get_u32(&r.payload[20]), 300u);
  float scale;
  uint32_t bits = get_u32(&r.payload[28]);
  std::memcpy(&scale, &bits, 4);
  CHECK(scale == 0.5f);
  CHECK_EQ(static_cast<int32_t>(get_u32(&r.payload[32])), -3);
  CHECK_EQ(r.payload.size(), 10u + 2 * 26u);
  // A second ALLOCATE reuses the interpreter.
  int before = rig.runner.allocations;
  rig.call(cmd::kAllocate, {});
  CHECK_EQ(rig.runner.allocations, before);
}

void test_set_input_invoke_get_output_timings() {
  Rig rig;
  CHECK(is_error(rig.call(cmd::kInvoke, {1, 0, 0, 0, 0}), ErrorCode::kWrongState));
  CHECK(is_error(rig.call(cmd::kSetInput, {0, 0, 0, 0, 0, 1}), ErrorCode::kWrongState));
  upload(rig, test_model(100), 100);
  rig.call(cmd::kAllocate, {});
  std::vector<uint8_t> in(300);
  for (int i = 0; i < 300; ++i) in[i] = static_cast<uint8_t>(i);
  CHECK_EQ(rig.call(cmd::kSetInput, cat(std::vector<uint8_t>{0, 0, 0, 0, 0},
                                        std::vector<uint8_t>(in.begin(), in.begin() + 200)))
               .cmd,
           cmd::kSetInput | cmd::kReplyBit);
  rig.call(cmd::kSetInput, cat(std::vector<uint8_t>{0, 200, 0, 0, 0},
                               std::vector<uint8_t>(in.begin() + 200, in.end())));
  CHECK(is_error(rig.call(cmd::kSetInput, cat(std::vector<uint8_t>{0, 250, 0, 0, 0},
                                              std::vector<uint8_t>(100, 0))),
                 ErrorCode::kBadTensor));
  CHECK(is_error(rig.call(cmd::kSetInput, {1, 0, 0, 0, 0, 1}), ErrorCode::kBadTensor));
  // Each micros() call advances the fake clock by 7 us: two calls per timed run.
  rig.hal.tick = 7;
  Reply r = rig.call(cmd::kInvoke, {4, 0, 2, 0, kInvokeFlagResetState});
  rig.hal.tick = 0;
  CHECK_EQ(r.cmd, cmd::kInvoke | cmd::kReplyBit);
  CHECK_EQ(get_u32(&r.payload[0]), 4u);
  CHECK_EQ(get_u32(&r.payload[4]), 7u);
  CHECK_EQ(get_u32(&r.payload[8]), 7u);
  CHECK_EQ(get_u32(&r.payload[12]), 7u);
  CHECK_EQ(get_u32(&r.payload[16]), 7u);
  CHECK_EQ(get_u32(&r.payload[20]), 28u);
  CHECK_EQ(rig.runner.invokes, 6);
  CHECK_EQ(rig.runner.resets, 6);
  r = rig.call(cmd::kGetTimings, {1, 0, 3, 0});
  CHECK_EQ(r.payload.size(), 12u);
  CHECK_EQ(get_u32(&r.payload[8]), 7u);
  CHECK(is_error(rig.call(cmd::kGetTimings, {0, 0, 5, 0}), ErrorCode::kBadPayload));
  r = rig.call(cmd::kGetOutput, {0, 10, 0, 0, 0, 0xFF, 0xFF});
  CHECK_EQ(r.payload.size(), 290u);
  CHECK_EQ(r.payload[0], 11);
  r = rig.call(cmd::kGetOutput, {0, 0, 0, 0, 0, 5, 0});
  CHECK_EQ(r.payload.size(), 5u);
  CHECK(is_error(rig.call(cmd::kGetOutput, {1, 0, 0, 0, 0, 5, 0}), ErrorCode::kBadTensor));
  CHECK(is_error(rig.call(cmd::kGetOutput, {0, 0x2D, 1, 0, 0, 5, 0}), ErrorCode::kBadTensor));
  CHECK(is_error(rig.call(cmd::kInvoke, {0, 0, 0, 0, 0}), ErrorCode::kBadPayload));
  CHECK(is_error(rig.call(cmd::kInvoke, {0x01, 0x02, 0, 0, 0}), ErrorCode::kBadPayload));
  rig.runner.fail_invoke = true;
  CHECK(is_error(rig.call(cmd::kInvoke, {1, 0, 0, 0, 0}), ErrorCode::kInvokeFailed));
}

void test_median_even_and_odd() {
  Rig rig;
  upload(rig, test_model(100), 100);
  rig.call(cmd::kAllocate, {});
  // Each invoke advances the board clock by a scripted duration.
  rig.runner.clock = &rig.hal.now;
  rig.runner.durations = {50, 10, 40, 20, 30, 1000};
  Reply r = rig.call(cmd::kInvoke, {5, 0, 1, 0, 0});  // 1 warm-up (50) + 5 timed
  CHECK_EQ(get_u32(&r.payload[0]), 5u);
  CHECK_EQ(get_u32(&r.payload[4]), 10u);
  CHECK_EQ(get_u32(&r.payload[8]), 30u);
  CHECK_EQ(get_u32(&r.payload[12]), 1000u);
  CHECK_EQ(get_u32(&r.payload[16]), 220u);
  r = rig.call(cmd::kGetTimings, {0, 0, 5, 0});
  CHECK_EQ(get_u32(&r.payload[0]), 10u);  // run order is kept
  CHECK_EQ(get_u32(&r.payload[16]), 1000u);
  rig.runner.durations = {0, 10, 40, 20, 30};
  rig.runner.next_duration = 0;
  r = rig.call(cmd::kInvoke, {4, 0, 1, 0, 0});  // even n: mean of the middle two
  CHECK_EQ(get_u32(&r.payload[8]), 25u);
}

void test_reset() {
  Rig rig;
  upload(rig, test_model(100), 100);
  rig.call(cmd::kAllocate, {});
  Reply r = rig.call(cmd::kReset, {});
  CHECK_EQ(r.cmd, cmd::kReset | cmd::kReplyBit);
  CHECK_EQ(rig.hal.resets, 1);
  CHECK(is_error(rig.call(cmd::kInvoke, {1, 0, 0, 0, 0}), ErrorCode::kWrongState));
  // The model survives in the store; ALLOCATE works again.
  CHECK_EQ(rig.call(cmd::kAllocate, {}).cmd, cmd::kAllocate | cmd::kReplyBit);
}

void test_board_nak_on_corruption_and_truncation() {
  Rig rig;
  std::vector<uint8_t> f = frame(cmd::kPing, 42, {1, 2, 3});
  f[7] ^= 0xFF;
  for (uint8_t b : f) rig.hal.rx.push_back(b);
  rig.hal.tx.clear();
  rig.agent.poll();
  std::vector<Reply> r = parse_all(rig.hal.tx);
  CHECK_EQ(r.size(), 1u);
  CHECK(is_error(r[0], ErrorCode::kBadCrc));
  CHECK_EQ(r[0].seq, 42);
  // Half a frame, then silence: TRUNCATED with the header's SEQ.
  f = frame(cmd::kPing, 43, {1, 2, 3});
  for (size_t i = 0; i < 8; ++i) rig.hal.rx.push_back(f[i]);
  rig.hal.tx.clear();
  rig.agent.poll();
  CHECK(rig.hal.tx.empty());
  rig.hal.now += kInterByteTimeoutUs;
  rig.agent.poll();
  r = parse_all(rig.hal.tx);
  CHECK_EQ(r.size(), 1u);
  CHECK(is_error(r[0], ErrorCode::kTruncated));
  CHECK_EQ(r[0].seq, 43);
  // And the board answers the next frame normally.
  CHECK_EQ(rig.call(cmd::kPing, {7}).cmd, cmd::kPing | cmd::kReplyBit);
}

const TestCase kTests[] = {
    {"crc16_check_value", test_crc16_check_value},
    {"sha256_vectors", test_sha256_vectors},
    {"frame_roundtrip", test_frame_roundtrip},
    {"parser_resync_and_errors", test_parser_resync_and_errors},
    {"parser_fuzz", test_parser_fuzz},
    {"ready_ping_info", test_ready_and_ping_and_info},
    {"upload_happy_path_and_dedupe", test_upload_happy_path_and_dedupe},
    {"upload_out_of_order_and_duplicates", test_upload_out_of_order_and_duplicates},
    {"upload_errors", test_upload_errors},
    {"allocate", test_allocate},
    {"set_input_invoke_get_output_timings", test_set_input_invoke_get_output_timings},
    {"median", test_median_even_and_odd},
    {"reset", test_reset},
    {"board_nak_on_corruption_and_truncation", test_board_nak_on_corruption_and_truncation},
};

}  // namespace

int main() {
  for (const TestCase& t : kTests) {
    int before = g_failures;
    t.fn();
    std::printf("%s %s\n", g_failures == before ? "PASS" : "FAIL", t.name);
  }
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
