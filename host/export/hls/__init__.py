"""HLS project generator, as the host imports it: an int8 .tflite -> an HLS project.

The generator (front end, IR, writer, templates and the C++ layer library) lives in
`device_agent.fpga`, so that the agent's `hls-csim` backend runs it on a machine without
the host package; this module re-exports its public API under the host's name.
`host.export.hls.demo` (which trains a Keras model) is host-only.
"""

from device_agent.fpga.generator import HlsProject, generate
from device_agent.fpga.ir import IrLayer, IrModel
from device_agent.fpga.parser import parse_tflite, quantize_multiplier

__all__ = ["HlsProject", "IrLayer", "IrModel", "generate", "parse_tflite", "quantize_multiplier"]
