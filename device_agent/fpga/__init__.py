"""The FPGA path shared by the host and the agent: board data, HALF models, HLS generator.

- `boards`: FPGA board facts (`boards.json`): `load_board`, `board_names`, `Board`;
- `half`: HALF's analytic latency, power and energy models (`estimate`, `objectives`,
  `HwLayer`, `Unroll`), every figure ESTIMATED;
- `parser` -> `ir` -> `writer`: an int8 .tflite 1-D CNN -> an HLS project (`generate`),
  filled from the template files in `templates/` (`render`), with the C++ layer library
  (`include/`, the repository's hls/include) copied in.

It lives in `device_agent` because both sides use it and a board must never need the
host package: the host's search screens candidates with the HALF models and exports
projects, and the agent's `hls-csim` backend serves generated projects as a device. No
TensorFlow: .tflite files are read with the flatbuffer schema bundled with LiteRT.
"""

from device_agent.fpga.boards import Board, board_names, load_board
from device_agent.fpga.generator import HlsProject, generate
from device_agent.fpga.half import HalfEstimate, HwLayer, Unroll, estimate, objectives
from device_agent.fpga.ir import IrLayer, IrModel
from device_agent.fpga.parser import parse_tflite, quantize_multiplier

__all__ = [
    "Board",
    "HalfEstimate",
    "HlsProject",
    "HwLayer",
    "IrLayer",
    "IrModel",
    "Unroll",
    "board_names",
    "estimate",
    "generate",
    "load_board",
    "objectives",
    "parse_tflite",
    "quantize_multiplier",
]
