"""The HALF space: 60 separable configurations + 4 poolings, encoding, objectives."""

from __future__ import annotations

import numpy as np
import pytest

from host.errors import ConfigError
from host.spaces.base import InputSpec, get_space
from host.spaces.half import HalfArch, HalfSpace, MaxPool, SepConv, build_half_model, preselect

INPUT = InputSpec(256, 1, 2)


def test_registered_with_sixty_configurations():
    s = get_space("half")
    assert isinstance(s, HalfSpace)
    assert sum(isinstance(t, SepConv) for t in s.layer_types) == 60
    assert sum(isinstance(t, MaxPool) for t in s.layer_types) == 4
    with pytest.raises(ConfigError):
        s.architectures()


def test_encode_decode_roundtrip_and_dormant_genes():
    s = HalfSpace(INPUT)
    for arch in s.sample(50, seed=3):
        assert 2 <= len(arch.layers) <= 15
        bits = s.encode(arch)
        assert len(bits) == s.chromosome_length and s.decode(bits) == arch
    bits = s.encode(s.sample(1, seed=4)[0])
    bits[0] = 0  # make the first slot dormant: decodes to a shorter net or None
    d = s.decode(bits)
    assert d is None or s.contains(d)


def test_invalid_architectures():
    s = HalfSpace(InputSpec(32))
    assert not s.contains(HalfArch((MaxPool(8), MaxPool(8), SepConv(9, 1, 1, 4))))
    assert not s.contains(HalfArch((MaxPool(2), MaxPool(2))))  # no convolution
    assert not s.contains(HalfArch((SepConv(3, 1, 1, 4),)))  # depth 1 < 2


def test_hardware_objectives_and_preselect():
    s = HalfSpace(INPUT)
    archs = s.sample(20, seed=5)
    obj = s.hardware_objectives(archs[0], "pynq-z1")
    assert obj["latency_s_max_unroll"] < obj["latency_s_min_unroll"]
    kept = preselect(archs, lambda a: s.hardware_objectives(a, "pynq-z1"), keep=5)
    assert len(kept) == 5 and all(k in archs for k in kept)
    # The search's view of the same models: estimated figures in microseconds and microjoules.
    est = s.estimates(archs[0])
    assert est["fpga_latency_us_min_unroll"] == pytest.approx(obj["latency_s_min_unroll"] * 1e6)
    assert est["fpga_energy_uj_max_unroll"] == pytest.approx(obj["energy_j_max_unroll"] * 1e6)
    assert est["fpga_throughput_max_unroll"] > est["fpga_throughput_min_unroll"]
    assert s.estimate_source().startswith("estimated (HALF model, pynq-z1")
    with pytest.raises(ConfigError, match="board"):
        HalfSpace(INPUT, board="not-a-board")


def test_integer_genes_and_keys():
    s = HalfSpace(INPUT, max_depth=6)
    assert len(s.genes()) == 12 and s.int_bounds()[1] == (0, 63)
    for arch in s.sample(20, seed=7):
        assert s.decode_int(s.encode_int(arch)) == arch
        assert HalfArch.from_key(arch.key()) == arch
    genes = s.encode_int(s.sample(1, seed=8)[0])
    genes[1] = 64  # a layer type that does not exist
    assert s.decode_int(genes) is None
    with pytest.raises(ConfigError, match="not a HALF key"):
        HalfArch.from_key("bionet-b1-x1-l16")


def test_keras_builder_and_fold(tmp_path):
    pytest.importorskip("tf_keras")
    from host.spaces.half import fold_batchnorm

    arch = HalfArch((SepConv(5, 2, 2, 8), MaxPool(2), SepConv(3, 1, 1, 4)))
    m = build_half_model(arch, INPUT)
    rng = np.random.default_rng(0)
    for layer in m.layers:
        if layer.name.endswith("_bn"):
            g, b, mu, v = layer.get_weights()
            layer.set_weights([rng.uniform(.5, 2, g.shape), rng.normal(0, .1, b.shape),
                               rng.normal(0, .1, mu.shape), rng.uniform(.5, 2, v.shape)])
    f = fold_batchnorm(m, arch, batch_size=None)
    x = rng.normal(size=(4, 256, 1)).astype("float32")
    np.testing.assert_allclose(m(x, training=False).numpy(), f(x).numpy(), atol=1e-4)
    assert not any("bn" in layer.name for layer in f.layers)
