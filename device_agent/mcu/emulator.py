"""The emulated board as a process on a pseudo-terminal, and a handle to start one.

`python -m device_agent.mcu.emulator --board nano33ble` opens a pty, prints
`PTY /dev/pts/N` on stdout, announces READY on it and then serves the hilnas serial protocol
(firmware/PROTOCOL.md) until its stdin closes (so it dies with the agent that started it).

Fault injection for tests and for exercising a bridge: `--corrupt-rate` / `--drop-rate`
damage or lose that fraction of bytes in both directions, `--silent` never answers,
`--unplug-after-bytes N` closes the line after N received bytes (a board pulled out
mid-upload), `--reset-on-invoke` resets the board on INVOKE (a hard fault).
"""

from __future__ import annotations

import argparse
import os
import random
import select
import subprocess
import sys
import time
import tty
from collections.abc import Sequence
from dataclasses import dataclass

from device_agent.errors import DeviceUnavailable
from device_agent.mcu.boards import load_board


@dataclass(frozen=True)
class LineFaults:
    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0

    def args(self) -> list[str]:
        return [
            "--corrupt-rate", str(self.corrupt_rate),
            "--drop-rate", str(self.drop_rate),
            "--seed", str(self.seed),
        ]  # fmt: skip


def _damage(data: bytes, faults: LineFaults, rng: random.Random) -> bytes:
    if not data or (faults.corrupt_rate <= 0 and faults.drop_rate <= 0):
        return data
    out = bytearray()
    for byte in data:
        r = rng.random()
        if r < faults.drop_rate:
            continue
        if r < faults.drop_rate + faults.corrupt_rate:
            byte ^= 1 << rng.randrange(8)
        out.append(byte)
    return bytes(out)


def serve(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_agent.mcu.emulator")
    parser.add_argument("--board", default="nano33ble")
    parser.add_argument("--ram-bytes", type=int, default=None, help="override the board's RAM")
    parser.add_argument("--flash-bytes", type=int, default=None, help="override its flash")
    parser.add_argument(
        "--compression", action="store_true",
        help="emulate a firmware built with USE_TFLM_COMPRESSION=1 (runs LUT-compressed models)",
    )
    parser.add_argument("--corrupt-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--silent", action="store_true")
    parser.add_argument("--unplug-after-bytes", type=int, default=0)
    parser.add_argument("--reset-on-invoke", action="store_true")
    args = parser.parse_args(argv)

    from device_agent.mcu.board import EmulatedBoard

    spec = load_board(args.board).with_limits(
        ram_bytes=args.ram_bytes, flash_bytes=args.flash_bytes, compression=args.compression
    )
    faults = LineFaults(args.corrupt_rate, args.drop_rate, args.seed)
    rng = random.Random(args.seed)
    master, slave = os.openpty()
    # Raw mode: no echo, no CR/LF translation, no signal characters; the line carries bytes.
    tty.setraw(slave)
    path = os.ttyname(slave)
    board = EmulatedBoard(spec)
    board.fault_reset_on_invoke = args.reset_on_invoke
    print(f"PTY {path}", flush=True)
    if not args.silent:
        os.write(master, board.ready_frame())
    received = 0
    stdin = sys.stdin.fileno()
    watch = [master, stdin]
    try:
        while True:
            readable, _, _ = select.select(watch, [], [], 0.01)
            now = time.monotonic()
            if stdin in readable and not os.read(stdin, 4096):
                return 0  # the agent that started us has gone
            out = b""
            if master in readable:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    data = b""
                received += len(data)
                if args.unplug_after_bytes and received >= args.unplug_after_bytes:
                    os.close(master)
                    os.close(slave)
                    return 0
                if args.silent:
                    continue
                out += board.handle_bytes(_damage(data, faults, rng), now)
            if not args.silent:
                out += board.poll(now)
            if out:
                os.write(master, _damage(out, faults, rng))
    except KeyboardInterrupt:
        return 0


class EmulatorProcess:
    """Starts the emulated board in a child process and waits for its pty path."""

    def __init__(
        self,
        board: str = "nano33ble",
        *,
        extra_args: Sequence[str] = (),
        start_timeout: float = 60.0,
    ) -> None:
        cmd = [sys.executable, "-m", "device_agent.mcu.emulator", "--board", board, *extra_args]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + start_timeout
        line = b""
        fd = self.proc.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.close()
                raise DeviceUnavailable(
                    f"the emulated board did not start within {start_timeout:.0f} s ({cmd})"
                )
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 256)
                if not chunk:
                    continue
                line += chunk
        text = line.decode().strip()
        if not text.startswith("PTY "):
            self.close()
            raise DeviceUnavailable(f"the emulated board printed {text!r}, expected 'PTY <path>'")
        self.path = text[4:]

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()  # the child exits when its stdin closes
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None and not f.closed:
                f.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(serve())
