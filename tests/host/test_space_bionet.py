"""The BioNetExplorer space: sizes, chromosome, integer encoding, costs vs Keras."""

from __future__ import annotations

import itertools

import pytest

from host.errors import ConfigError
from host.hw.costs import analytic_costs
from host.spaces import BioNetArch, BioNetSpace, build_keras_model, get_space


def test_sizes_with_and_without_bounds() -> None:
    space = get_space("bionet")
    assert isinstance(space, BioNetSpace)
    assert len(space.all_architectures()) == 320
    assert space.size() == 135  # the paper's 320 -> 135
    assert get_space("bionet", max_params=None).size() == 320
    assert get_space("bionet", max_params=None, max_filters=256).size() == 215
    assert get_space("bionet", max_params=None, max_blocks=0).size() == 20
    assert all(space.contains(a) for a in space.architectures())
    assert len(space.distinct_architectures()) == 90  # 0 blocks ignore x: 135 -> 90 networks


def test_binary_chromosome_roundtrip_and_invalid_codes() -> None:
    space = get_space("bionet", max_params=None)
    assert space.chromosome_length == 9
    valid = 0
    for bits in itertools.product((0, 1), repeat=9):
        arch = space.decode(list(bits))
        if arch is not None:
            valid += 1
            assert space.encode(arch) == list(bits)
    assert valid == 320  # 512 codes, z codes 5..7 are invalid
    assert space.decode([0, 0, 0, 0, 0, 0, 1, 1, 1]) is None
    with pytest.raises(ConfigError, match="9 bits"):
        space.decode([0, 1])
    bounded = get_space("bionet")
    big = BioNetArch(15, 1, 8)
    assert bounded.decode(bounded.encode(big)) is None  # outside the bounds: fitness 0


def test_integer_encoding_and_keys() -> None:
    space = get_space("bionet")
    arch = BioNetArch(3, 2, 5)
    assert space.encode_int(arch) == [3, 2, 5]
    assert space.decode_int([3, 2, 5]) == arch
    assert space.decode_int([3, 2, 9]) is None
    assert arch.key() == "bionet-b3-x2-l32"
    assert BioNetArch.from_key(arch.key()) == arch
    assert arch.filters == (32, 32, 64)
    assert len({a.key() for a in space.architectures()}) == 135
    assert hash(arch) == hash(BioNetArch(3, 2, 5))
    with pytest.raises(ConfigError, match="lstm_exp"):
        BioNetArch(1, 1, 9)
    assert len(space.sample(10, seed=1)) == 10
    assert space.sample(5, seed=2) == space.sample(5, seed=2)


def test_costs_by_hand_for_lstm_only() -> None:
    c = analytic_costs(BioNetArch(0, 1, 4), input_length=256, n_classes=2)
    lstm_w, lstm_b = 4 * (1 * 16 + 16 * 16), 4 * 16
    assert c.params == lstm_w + lstm_b + 16 * 2 + 2
    assert c.macs == 256 * lstm_w + 32
    assert c.storage_float32_bytes == 4 * c.deployed_params
    assert c.storage_int8_bytes == lstm_w + 32 + 4 * (lstm_b + 2)
    assert c.flops > 2 * c.macs


@pytest.mark.parametrize("arch", [BioNetArch(0, 1, 4), BioNetArch(2, 1, 5), BioNetArch(3, 2, 4)])
def test_costs_match_keras_parameter_count(arch: BioNetArch) -> None:
    model = build_keras_model(arch, 128, 1, 5)
    assert analytic_costs(arch, 128, 5).params == model.count_params()
    assert model.output_shape == (None, 5)
    assert model.name == arch.key()


def test_unknown_space_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown space 'nope'; known: bionet, data_aware, "
                                          "half, ppg_cnnlstm, ppg_peaks"):
        get_space("nope")
