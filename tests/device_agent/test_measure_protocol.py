"""The measurement protocol's stopping rule and statistics, with controlled timings."""

from __future__ import annotations

import time

import numpy as np
import pytest

from device_agent.errors import ConfigError
from device_agent.measure import make_inputs, run_timed
from device_agent.types import (
    InputSource,
    MeasureSettings,
    Source,
    latency_stats,
    median_ci95_relative,
)


def busy_wait(us: float) -> None:
    end = time.perf_counter_ns() + int(us * 1000)
    while time.perf_counter_ns() < end:
        pass


def test_stops_when_the_median_is_stable() -> None:
    settings = MeasureSettings(warmup_runs=2, min_runs=20, max_runs=5000, target_ci_relative=0.02)
    runs = run_timed(lambda: busy_wait(200), settings)
    assert runs.stop_reason == "stable"
    assert 20 <= runs.samples_us.size < 5000
    assert median_ci95_relative(np.sort(runs.samples_us)) <= 0.02
    assert 180 < np.median(runs.samples_us) < 2000


def test_runs_exactly_max_runs_without_a_stability_target() -> None:
    settings = MeasureSettings(warmup_runs=0, min_runs=5, max_runs=37, target_ci_relative=0.0)
    runs = run_timed(lambda: None, settings)
    assert runs.stop_reason == "max_runs"
    assert runs.samples_us.size == 37


def test_time_budget_caps_the_runs() -> None:
    settings = MeasureSettings(
        warmup_runs=0, min_runs=5, max_runs=100000, time_budget_seconds=0.2, target_ci_relative=0.0
    )
    t0 = time.perf_counter()
    runs = run_timed(lambda: busy_wait(1000), settings)
    assert runs.stop_reason == "time_budget"
    assert time.perf_counter() - t0 < 0.5
    assert 50 < runs.samples_us.size < 250


def test_callbacks_bracket_the_timed_runs() -> None:
    events: list[str] = []
    settings = MeasureSettings(warmup_runs=3, min_runs=5, max_runs=5, target_ci_relative=0.0)
    run_timed(
        lambda: events.append("run"),
        settings,
        on_timed_start=lambda: events.append("start"),
        on_timed_end=lambda: events.append("end"),
    )
    assert events == ["run"] * 3 + ["start"] + ["run"] * 5 + ["end"]


def test_latency_stats_percentiles_and_ci() -> None:
    samples = np.arange(1, 101, dtype=float)  # 1..100 us
    stats = latency_stats(
        samples, source=Source.MEASURED, timer="t", stop_reason="max_runs", target_ci_relative=0.02
    )
    assert stats.n == 100 and stats.min_us == 1 and stats.max_us == 100
    assert stats.p50_us == pytest.approx(50.5)
    assert stats.p90_us == pytest.approx(90.1)
    # Ranks 40 and 60 bound the CI of the median of 100 samples: (61 - 40) / 2 / 50.5.
    assert stats.median_ci95_relative == pytest.approx((61 - 40) / 2 / 50.5)
    assert not stats.stable


def test_median_ci_needs_enough_samples() -> None:
    assert median_ci95_relative(np.array([1.0, 2.0, 3.0])) == float("inf")


def test_settings_validation_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="max_runs"):
        MeasureSettings(min_runs=10, max_runs=5).validated()
    with pytest.raises(ConfigError, match="threads"):
        MeasureSettings(threads=0).validated()
    with pytest.raises(ConfigError, match="inputs"):
        MeasureSettings(input_source=InputSource.PROVIDED).validated()


def test_inputs_follow_the_model_dtype_and_seed() -> None:
    details = [{"name": "x", "shape": np.array([1, 8, 1]), "dtype": np.int8}]
    a = make_inputs(details, MeasureSettings(seed=1))
    b = make_inputs(details, MeasureSettings(seed=1))
    c = make_inputs(details, MeasureSettings(seed=2))
    assert a[0].dtype == np.int8 and a[0].shape == (1, 8, 1)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])
    zeros = make_inputs(details, MeasureSettings(input_source=InputSource.ZEROS))
    assert not zeros[0].any()
    with pytest.raises(ConfigError, match="shape"):
        make_inputs(
            details,
            MeasureSettings(
                input_source=InputSource.PROVIDED, inputs=(np.zeros((1, 4, 1), np.int8),)
            ),
        )
