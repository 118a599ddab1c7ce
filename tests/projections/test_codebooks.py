"""Binary, ternary, uniform-grid and fixed-codebook quantization."""

import numpy as np
import pytest
import torch

from compressopt.projections import (
    Binary,
    FixedCodebook,
    PowersOfTwo,
    StorageCost,
    Ternary,
    UniformQuantization,
    powers_of_two,
    project_binary,
    project_codebook,
    project_ternary,
    project_uniform,
)
from compressopt.verify import brute_scaled_grid


def _err(x, t):
    return float(np.sum((x - float(t.scale) * t.codes) ** 2))


def test_binary_and_ternary_closed_forms():
    x = np.array([0.1, -2.0, 1.8, 0.2])
    b = project_binary(x)
    assert float(b.scale) == pytest.approx(np.abs(x).mean()) and b.codes.tolist() == [1, -1, 1, 1]
    t = project_ternary(x)
    assert float(t.scale) == pytest.approx(1.9) and t.codes.tolist() == [0, -1, 1, 0]
    assert _err(x, t) == pytest.approx(brute_scaled_grid(x, (-1, 0, 1)).objective)


@pytest.mark.parametrize("seed", range(5))
def test_uniform_exact_sweep_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(5) * rng.choice([0.01, 1.0, 100.0])
    for levels in (1, 2, 3):
        t = project_uniform(x, levels=levels, method="exact")
        assert np.abs(t.codes).max() <= levels
        assert _err(x, t) == pytest.approx(
            brute_scaled_grid(x, range(-levels, levels + 1)).objective, rel=1e-9, abs=1e-12)


def test_uniform_alternating_on_a_large_tensor_is_near_exact():
    """Beyond 2^20 breakpoints "auto" alternates from a sketch's exact scale."""
    rng = np.random.default_rng(0)
    x = rng.standard_t(4, 60_000)  # n L = 7.7e6 breakpoints for 8 bits: "auto" alternates
    fast = project_uniform(x, bits=8)
    exact = project_uniform(x, bits=8, method="exact")
    assert _err(x, exact) <= _err(x, fast) * (1 + 1e-12)
    assert _err(x, fast) <= _err(x, exact) * (1 + 1e-4)


def test_uniform_bits_give_levels_and_cost():
    t = project_uniform(np.linspace(-1, 1, 101), bits=3)  # L = 4
    assert t.codes.min() == -4 and t.codes.max() == 4
    s = UniformQuantization(bits=3)
    assert s.cost(s.compress(np.ones(5))) == StorageCost(5, 5, 4, 32)  # 9 levels: 4 bits
    with pytest.raises(ValueError, match="exactly one"):
        project_uniform(np.ones(3), bits=2, levels=2)
    with pytest.raises(ValueError, match="method"):
        UniformQuantization(bits=2, method="lloyd")


def test_uniform_on_torch():
    x = torch.linspace(-1, 1, 50, dtype=torch.float64)
    t = project_uniform(x, bits=2)
    tn = project_uniform(x.numpy(), bits=2)
    assert t.codes.dtype == torch.int64 and t.scale.dtype == torch.float64
    assert float(t.scale) == pytest.approx(float(tn.scale))
    assert np.array_equal(t.codes.numpy(), tn.codes)


def test_codebooks_and_schemes():
    assert powers_of_two(-1, 1, zero=False) == [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0]
    q = project_codebook(np.array([0.7, -0.3, 9.0, 0.75]), [1.0, 0.5, -0.5])
    assert q.codebook.tolist() == [-0.5, 0.5, 1.0]
    assert q.codebook[q.assignments].tolist() == [0.5, -0.5, 1.0, 0.5]  # 0.75: tie goes low
    p2 = PowersOfTwo(emin=-2, emax=0)
    assert p2.project(np.array([0.3, -0.9])).tolist() == [0.25, -1.0]
    assert p2.cost(p2.compress(np.ones(4))) == StorageCost(4, 4, 3)  # 7 values: 3 bits
    assert FixedCodebook((0.0, 1.0)).project(np.array([0.2, 0.8])).tolist() == [0.0, 1.0]
    assert Binary().cost(Binary().compress(np.ones(3))) == StorageCost(3, 3, 1, 32)
    assert Ternary().cost(Ternary().compress(np.ones(3))) == StorageCost(3, 3, 2, 32)
    with pytest.raises(ValueError, match="non-empty"):
        project_codebook(np.ones(2), [])
    with pytest.raises(ValueError, match="emax"):
        powers_of_two(2, 1)
