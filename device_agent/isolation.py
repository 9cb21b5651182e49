"""Run candidates in a child process, so a model that crashes the runtime spares the agent.

`IsolatedWorker` keeps one worker process warm (starting a runtime costs far more than the
overhead budget of a cached measurement) and talks to it over two pipes with the worker
pipe protocol (device_agent.pipe). The worker is `device_agent.worker` by default; any
module whose `main()` calls `device_agent.pipe.run_worker` can be run this way (the host's
TFLite converter is one).
When the child dies (a segfault in the runtime, the kernel's OOM killer, an abort) the call
raises `WorkerCrashed`; when it overruns its deadline it is killed and the call raises
`WorkerTimedOut` (both MeasurementFailed, carrying the signal or the deadline). The next
call starts a fresh child.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from device_agent import pipe
from device_agent.errors import DeviceUnavailable, ProtocolError, WorkerCrashed, WorkerTimedOut
from device_agent.types import RuntimeInfo

log = logging.getLogger(__name__)


def _signal_name(returncode: int) -> str | None:
    """The name of the signal that killed a child (returncode < 0), or None."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


class IsolatedWorker:
    """A warm child process that runs models; restarted after every crash or timeout."""

    def __init__(
        self,
        *,
        runtime: str | None = None,
        memory_limit_bytes: int | None = None,
        start_timeout_s: float = 60.0,
        module: str = "device_agent.worker",
        label: str = "the runtime",
        executable: str | None = None,
    ) -> None:
        self.module = module
        self.label = label  # how messages name what ran: "the runtime", "the converter"
        self.executable = executable or sys.executable
        self.runtime_preference = runtime
        self.memory_limit_bytes = memory_limit_bytes
        self.start_timeout_s = start_timeout_s
        self.runtime_info: RuntimeInfo | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._req_w: int | None = None
        self._resp_r: int | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._lock = threading.Lock()
        self.restarts = 0

    # ---------------------------------------------------------------------- lifecycle
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> RuntimeInfo:
        with self._lock:
            return self._start_locked()

    def _start_locked(self) -> RuntimeInfo:
        if self._proc is not None and self._proc.poll() is None:
            assert self.runtime_info is not None
            return self.runtime_info
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if self.memory_limit_bytes:
            env["HILNAS_WORKER_MEMORY_LIMIT"] = str(self.memory_limit_bytes)
        cmd = pipe.worker_command(
            self.executable, self.module, req_r, resp_w, self.runtime_preference
        )
        self._proc = subprocess.Popen(
            cmd,
            pass_fds=(req_r, resp_w),
            stdin=subprocess.DEVNULL,
            # The runtime prints to stdout and stderr; keep both off the agent's stdout,
            # where `hilnas measure --json` writes its result.
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C to the agent reaches the agent, not the worker
        )
        os.close(req_r)
        os.close(resp_w)
        self._req_w, self._resp_r = req_w, resp_r
        self._stderr_tail.clear()
        threading.Thread(target=self._drain_output, args=(self._proc,), daemon=True).start()
        ready = self._read(time.monotonic() + self.start_timeout_s, "start", self.start_timeout_s)
        if isinstance(ready, pipe.Failure):
            self._kill_locked()
            raise DeviceUnavailable(f"{self.label} could not start: {ready.message}")
        if not isinstance(ready, pipe.Ready):
            self._kill_locked()
            raise ProtocolError(f"{self.label} sent {type(ready).__name__} before Ready")
        self.runtime_info = ready.runtime
        log.info("worker %s started with %s", self._proc.pid, self.runtime_info)
        return ready.runtime

    def _drain_output(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._stderr_tail.append(line)
            log.debug("worker %s: %s", proc.pid, line)

    def _kill_locked(self) -> None:
        proc, self._proc = self._proc, None
        for fd in (self._req_w, self._resp_r):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._req_w = self._resp_r = None
        if proc is not None and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - kernel trouble
                log.error("worker %s did not die after SIGKILL", proc.pid)

    def close(self) -> None:
        with self._lock:
            self._kill_locked()

    # ---------------------------------------------------------------------- pipe I/O
    def _read(self, deadline: float, what: str, timeout_s: float) -> pipe.Response:
        """The child's next message; a dead or overdue child is killed and reported as such."""
        assert self._resp_r is not None
        try:
            return pipe.read_response(self._resp_r, deadline)
        except TimeoutError:
            pid = self.pid
            self._kill_locked()
            self.restarts += 1
            raise WorkerTimedOut(
                f"{self.label} did not finish {what} within its deadline of {timeout_s:.0f} s; "
                f"worker {pid} was killed",
                deadline_s=timeout_s,
                during=what,
            ) from None
        except EOFError:
            raise self._crashed(what) from None

    def _crashed(self, what: str) -> WorkerCrashed:
        proc = self._proc
        code = proc.wait(timeout=10) if proc is not None else 0
        self._kill_locked()
        self.restarts += 1
        tail = " | ".join(list(self._stderr_tail)[-3:])
        name = _signal_name(code)
        message = f"{self.label} crashed during {what} ({name or f'exit status {code}'})"
        return WorkerCrashed(message + (f"; last output: {tail}" if tail else ""),
                             returncode=code, signal=name, during=what, output_tail=tail)

    # ---------------------------------------------------------------------- calls
    def call(
        self,
        op: str,
        *,
        timeout_s: float,
        on_event: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run `op` in the worker and return its result.

        Worker-side HilnasErrors are raised again as themselves; a dead worker raises
        WorkerCrashed, one that overruns `timeout_s` WorkerTimedOut.
        """
        with self._lock:
            self._start_locked()
            assert self._req_w is not None
            frame = memoryview(pipe.encode(pipe.Request(op, kwargs)))
            try:
                while frame:
                    frame = frame[os.write(self._req_w, frame):]
            except BrokenPipeError:
                raise self._crashed(op) from None
            deadline = time.monotonic() + timeout_s
            while True:
                message = self._read(deadline, op, timeout_s)
                if isinstance(message, pipe.Event):
                    if on_event is not None:
                        on_event(message.name)
                    continue
                break
        if isinstance(message, pipe.Result):
            return message.value
        if isinstance(message, pipe.Failure):
            if message.traceback:
                log.warning("worker error in %s:\n%s", op, message.traceback)
            raise message.exception()
        raise ProtocolError(f"{self.label} answered {op} with {type(message).__name__}")
