"""Measure one model on several devices at once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from device_agent.errors import HilnasError
from device_agent.types import Measurement, MeasureSettings
from host.fleet.device import Device, ModelBlob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetResult:
    """Per device: a measurement, or the error that prevented it (never silently dropped)."""

    measurements: dict[str, Measurement]
    errors: dict[str, HilnasError]

    @property
    def complete(self) -> bool:
        return not self.errors


class Fleet:
    def __init__(self, devices: Sequence[Device]) -> None:
        names = [d.name for d in devices]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            from device_agent.errors import ConfigError

            raise ConfigError(f"device names must be unique; repeated: {sorted(duplicates)}")
        self.devices = {d.name: d for d in devices}
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(devices)), thread_name_prefix="fleet"
        )

    def measure(
        self,
        model: bytes | str | Path | ModelBlob,
        settings: MeasureSettings | None = None,
        *,
        only: Sequence[str] | None = None,
    ) -> FleetResult:
        blob = ModelBlob.of(model)  # hash once, not once per device
        names = list(only) if only is not None else list(self.devices)
        futures = {n: self._pool.submit(self.devices[n].measure, blob, settings) for n in names}
        measurements: dict[str, Measurement] = {}
        errors: dict[str, HilnasError] = {}
        for name, future in futures.items():
            try:
                measurements[name] = future.result()
            except HilnasError as exc:
                log.warning("%s: %s", name, exc)
                errors[name] = exc
        return FleetResult(measurements, errors)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for device in self.devices.values():
            device.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
