"""FPGA board facts (part, board part, PS type, clock, resources, power constants).

The facts are data, in `boards.json` next to this module, not code: adding a board is an
entry in that file. Both sides read them: the host's HALF models and HLS generator, and the
agent's `hls-csim` backend (which serves the generated accelerator as a device).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from device_agent.errors import ConfigError


@dataclass(frozen=True)
class Board:
    """Board facts from the data file (part, clock, resources, power constants).

    `nominal_clock_mhz` is the clock the data file gives; `clock_mhz` may differ after
    `at_clock` (the power model scales its dynamic constant from the nominal clock).
    """

    name: str
    part: str
    board_part: str
    ps_ip: str
    family: str
    clock_mhz: float
    max_clock_mhz: float
    resources: Mapping[str, int]
    mac_units: int
    stream_width: int
    p_board_w: float
    p_idle_unit_mw: float
    p_calc_unit_mw: float
    power_rails: tuple[str, ...] = ()
    driver: str = "pynq"
    extra: Mapping[str, Any] = field(default_factory=dict)
    nominal_clock_mhz: float = 0.0  # 0: the same as clock_mhz

    def __post_init__(self) -> None:
        if not self.nominal_clock_mhz:
            object.__setattr__(self, "nominal_clock_mhz", float(self.clock_mhz))

    def at_clock(self, clock_mhz: float) -> Board:
        if not 0 < clock_mhz <= self.max_clock_mhz:
            raise ConfigError(
                f"clock {clock_mhz} MHz out of range for {self.name} (max {self.max_clock_mhz})"
            )
        return replace(self, clock_mhz=float(clock_mhz))


@cache
def _board_data() -> dict[str, Any]:
    text = resources.files("device_agent.fpga").joinpath("boards.json").read_text()
    data: dict[str, Any] = json.loads(text)["boards"]
    return data


def board_names() -> list[str]:
    """The boards of the data file, sorted."""
    return sorted(_board_data())


def load_board(name: str) -> Board:
    """Load the board called `name` from device_agent/fpga/boards.json."""
    data = _board_data()
    if name not in data:
        raise ConfigError(f"unknown FPGA board {name!r}; known: {', '.join(sorted(data))}")
    d = dict(data[name])
    known = {f for f in Board.__dataclass_fields__ if f not in ("name", "extra")}
    kwargs = {k: d.pop(k) for k in list(d) if k in known}
    kwargs["power_rails"] = tuple(kwargs.get("power_rails", ()))
    return Board(name=name, extra=d, **kwargs)


def as_board(board: Board | str, clock_mhz: float | None = None) -> Board:
    """A Board from a name or a Board, at `clock_mhz` when given."""
    b = load_board(board) if isinstance(board, str) else board
    return b if clock_mhz is None else b.at_clock(clock_mhz)


__all__ = ["Board", "as_board", "board_names", "load_board"]
