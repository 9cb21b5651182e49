"""The emulated microcontroller: a stand-in board that runs the real TFLite Micro interpreter.

It speaks the hilnas serial protocol (firmware/PROTOCOL.md) on a pseudo-terminal, enforces a
board's RAM and flash limits (`boards.json`), reports TFLM's real arena size, and reports
latency as *estimated* from a per-op cycle model, never as measured.
"""
