"""HALF's analytic latency, power and energy models, as the host imports them.

The models and the FPGA board data live in `device_agent.fpga` (`half`, `boards`), which
both sides share: the host screens candidates with them, and the agent's `hls-csim`
backend reports them for generated accelerators without needing the host package. This
module re-exports that public API (`HwLayer`, `Unroll`, `Board`, `load_board`, `estimate`,
`objectives`, ...) under its host name; see device_agent/fpga/half.py.
"""

from device_agent.fpga.half import *  # noqa: F403
from device_agent.fpga.half import __all__ as __all__
