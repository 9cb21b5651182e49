"""HALF's analytic models: Eq. 1 by hand, unrolling, labels, board data."""

from __future__ import annotations

import pytest

from device_agent.errors import ConfigError
from device_agent.fpga.boards import board_names, load_board
from device_agent.fpga.half import HwLayer, Unroll, estimate, objectives
from device_agent.types import Source


def test_boards_are_data():
    assert {"pynq-z1", "ultra96-v2", "zcu102"} <= set(board_names())
    b = load_board("ultra96-v2")
    assert b.part.startswith("xczu3eg") and b.clock_mhz > 0
    with pytest.raises(ConfigError):
        load_board("nope")


def test_latency_matches_eq1_by_hand():
    # conv k=3 s=1 cin=1 cout=2 on 10 positions, then GAP, then dense 2->2 (min unrolling).
    layers = [HwLayer("conv", 10, 1, 2, 3, 1), HwLayer("gap", 8, 2, 2), HwLayer("dense", 1, 2, 2)]
    e = estimate(layers, "pynq-z1", "min")
    # sigma0 = 1; conv: l=2*3*1=6, fill=(3-1)*1+6=8, sigma=max(6,1)=6
    # gap: l=2, fill=(8-1)*6+2=44, sigma=max(2, 8*6)=48; dense: l=2*2=4, fill=4
    assert e.latency_cycles == 8 + 44 + 4
    assert e.layers[0].sigma == 6 and e.layers[1].sigma == 48
    assert e.latency.source is Source.ESTIMATED and e.power.source is Source.ESTIMATED
    assert e.energy.value == pytest.approx(e.power.value * e.latency.value)


def test_stride_bounds_the_rate():
    layers = [HwLayer("dwconv", 64, 1, 1, 1, 4), HwLayer("gap", 16, 1, 1)]
    e = estimate(layers, "pynq-z1", "min")
    assert e.layers[0].sigma == 4  # one output per 4 inputs arriving every cycle


def test_unrolling_trades_power_for_latency():
    layers = [HwLayer("conv", 256, 4, 16, 9, 1), HwLayer("gap", 248, 16, 16),
              HwLayer("dense", 1, 16, 2)]
    lo, hi = estimate(layers, "ultra96-v2", "min"), estimate(layers, "ultra96-v2", "max")
    assert hi.latency.value < lo.latency.value
    assert hi.power.value > lo.power.value
    assert hi.alpha_total == 16 * 9 * 4 + 16 + 2 * 16
    explicit = estimate(layers, "ultra96-v2", [Unroll(4, 3, 2), Unroll(), Unroll()])
    assert hi.latency.value <= explicit.latency.value <= lo.latency.value
    with pytest.raises(ConfigError):
        estimate(layers, "ultra96-v2", [Unroll()])


def test_objectives_keys():
    obj = objectives([HwLayer("pwconv", 10, 2, 4), HwLayer("gap", 10, 4, 4)], "zcu102")
    quantities = ("power_w", "energy_j", "latency_s")
    want = {f"{q}_{t}_unroll" for q in quantities for t in ("min", "max")}
    assert set(obj) == {"params", *want}


def test_same_padding_shape_and_fill():
    # 'same': ceil(L / stride) outputs; the left padding is in the buffer before any input.
    same = HwLayer("dwconv", 10, 1, 1, 4, 2, padding="same")
    assert same.out_length == 5 and same.pad_total == 2 and same.pad_left == 1
    valid = HwLayer("dwconv", 10, 1, 1, 4, 2)
    assert valid.out_length == 4 and valid.pad_total == 0
    # TFLite puts the odd padded position on the right: total 3 -> left 1, right 2.
    odd = HwLayer("conv", 9, 1, 1, 4, 1, padding="same")
    assert odd.out_length == 9 and (odd.pad_total, odd.pad_left) == (3, 1)
    # An input shorter than the window is fine with 'same' padding, an error with 'valid'.
    assert HwLayer("maxpool", 2, 3, 3, 5, 1, padding="same").out_length == 2
    with pytest.raises(ConfigError, match="shorter than its window"):
        HwLayer("maxpool", 2, 3, 3, 5, 1)
    with pytest.raises(ConfigError, match="padding"):
        HwLayer("conv", 9, 1, 1, 3, 1, padding="causal")
    # Eq. 1 with sigma0 = 1: the 'same' layer needs kernel - pad_left = 3 inputs, not 4.
    e_same = estimate([same, HwLayer("gap", 5, 1, 1)], "pynq-z1", "min")
    e_valid = estimate([valid, HwLayer("gap", 4, 1, 1)], "pynq-z1", "min")
    assert e_same.layers[0].fill_cycles == (3 - 1) * 1 + 4
    assert e_valid.layers[0].fill_cycles == (4 - 1) * 1 + 4
    assert e_same.layers[0].active_cycles == 5 * 4  # every output, padded ones included


def test_host_names_re_export_the_shared_models():
    from host.hw import half as host_half

    assert host_half.HwLayer is HwLayer and host_half.estimate is estimate
    assert host_half.load_board is load_board
