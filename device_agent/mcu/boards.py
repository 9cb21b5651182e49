"""Board facts (RAM, flash, reserves, op resolver, cycle model) loaded from boards.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from device_agent.errors import ConfigError


@dataclass(frozen=True)
class BoardSpec:
    """One board. The arena and model budgets are what is left after the firmware's reserve."""

    id: str
    name: str
    cpu: str
    core: str
    clock_hz: int
    ram_bytes: int
    flash_bytes: int
    ram_reserve_bytes: int
    flash_reserve_bytes: int
    metadata_sector_bytes: int
    chunk_ms: int
    tflm_version: str
    ops: tuple[str, ...]
    cycle_model: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    #: Operators a firmware built with TFLM compression adds (DECODE for LUT models).
    compression_ops: tuple[str, ...] = ()
    #: Whether this board's firmware was built with compression (`compression_ops` resolved).
    compression: bool = False

    @property
    def resolver_ops(self) -> tuple[str, ...]:
        """The operators the firmware's op resolver registers."""
        return self.ops + (self.compression_ops if self.compression else ())

    @property
    def arena_bytes(self) -> int:
        """RAM for the tensor arena: RAM minus the firmware's reserve."""
        return self.ram_bytes - self.ram_reserve_bytes

    @property
    def model_slot_bytes(self) -> int:
        """Flash for one model: flash minus bootloader and sketch, minus the slot's header."""
        return self.flash_bytes - self.flash_reserve_bytes - self.metadata_sector_bytes

    def with_limits(
        self,
        *,
        ram_bytes: int | None = None,
        flash_bytes: int | None = None,
        compression: bool | None = None,
    ) -> BoardSpec:
        """A copy with other sizes (tests use a small flash for 'too large') or firmware.

        `compression=True`: the firmware was built with TFLM compression (DECODE resolved).
        """
        from dataclasses import replace

        return replace(
            self,
            ram_bytes=self.ram_bytes if ram_bytes is None else ram_bytes,
            flash_bytes=self.flash_bytes if flash_bytes is None else flash_bytes,
            compression=self.compression if compression is None else compression,
        )


@cache
def _raw() -> dict[str, Any]:
    text = resources.files("device_agent.mcu").joinpath("boards.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def board_ids() -> list[str]:
    return sorted(k for k in _raw() if not k.startswith("_"))


def load_board(board_id: str) -> BoardSpec:
    raw = _raw()
    if board_id not in raw or board_id.startswith("_"):
        raise ConfigError(f"unknown board {board_id!r}; known boards: {', '.join(board_ids())}")
    b = raw[board_id]
    try:
        return BoardSpec(
            id=board_id,
            name=b["name"],
            cpu=b["cpu"],
            core=b["core"],
            clock_hz=int(b["clock_hz"]),
            ram_bytes=int(b["ram_bytes"]),
            flash_bytes=int(b["flash_bytes"]),
            ram_reserve_bytes=int(b["ram_reserve_bytes"]),
            flash_reserve_bytes=int(b["flash_reserve_bytes"]),
            metadata_sector_bytes=int(b.get("metadata_sector_bytes", 0)),
            chunk_ms=int(b.get("chunk_ms", 100)),
            tflm_version=b["tflm_version"],
            ops=tuple(b["ops"]),
            cycle_model=dict(b.get("cycle_model", {})),
            compression_ops=tuple(b.get("compression_ops", ())),
        )
    except KeyError as exc:
        raise ConfigError(f"boards.json: board {board_id!r} lacks key {exc}") from None
