"""The HALF space: 60 separable configurations + 4 poolings, encoding, objectives."""

from __future__ import annotations

import numpy as np
import pytest

from host.errors import ConfigError
from host.spaces.base import get_space
from host.spaces.half import (
    AcceptanceLimits,
    HalfArch,
    HalfSpace,
    MaxPool,
    SepConv,
    detection_rates,
    preselect,
)


def test_registered_with_sixty_configurations():
    s = get_space("half")
    assert isinstance(s, HalfSpace)
    assert sum(isinstance(t, SepConv) for t in s.layer_types) == 60
    assert sum(isinstance(t, MaxPool) for t in s.layer_types) == 4
    with pytest.raises(ConfigError):
        s.architectures()


def test_encode_decode_roundtrip_and_dormant_genes():
    s = HalfSpace()
    for arch in s.sample(50, seed=3):
        assert 2 <= len(arch.layers) <= 15
        bits = s.encode(arch)
        assert len(bits) == s.chromosome_length and s.decode(bits) == arch
    bits = s.encode(s.sample(1, seed=4)[0])
    bits[0] = 0  # make the first slot dormant: decodes to a shorter net or None
    d = s.decode(bits)
    assert d is None or s.contains(d)


def test_invalid_architectures():
    s = HalfSpace(input_length=32)
    assert not s.contains(HalfArch((MaxPool(8), MaxPool(8), SepConv(9, 1, 1, 4))))
    assert not s.contains(HalfArch((MaxPool(2), MaxPool(2))))  # no convolution
    assert not s.contains(HalfArch((SepConv(3, 1, 1, 4),)))  # depth 1 < 2


def test_hardware_objectives_and_preselect():
    s = HalfSpace()
    archs = s.sample(20, seed=5)
    obj = s.hardware_objectives(archs[0], "pynq-z1")
    assert obj["latency_s_max_unroll"] < obj["latency_s_min_unroll"]
    kept = preselect(archs, lambda a: s.hardware_objectives(a, "pynq-z1"), keep=5)
    assert len(kept) == 5 and all(k in archs for k in kept)


def test_detection_rates_and_limits():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    p = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 0])
    det, fa = detection_rates(y, p)
    assert det == pytest.approx(5 / 6) and fa == pytest.approx(1 / 4)
    assert not AcceptanceLimits().accepts(det, fa)
    assert AcceptanceLimits(0.8, 0.3).accepts(det, fa)
    with pytest.raises(ConfigError):
        AcceptanceLimits(1.5)


def test_keras_builder_and_fold(tmp_path):
    pytest.importorskip("tf_keras")
    from host.spaces.half import fold_batchnorm

    s = HalfSpace()
    arch = HalfArch((SepConv(5, 2, 2, 8), MaxPool(2), SepConv(3, 1, 1, 4)))
    m = s.build_keras_model(arch, 256, 1, 2)
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
