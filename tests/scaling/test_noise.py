"""Seed noise: pooling repeats, the reference law's misfit, per-run draws; and the coverage of the bench's
multiple intervals built on them (benchmarks/interval_coverage.py runs the same at scale)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from scarce.scaling.noise import SeedNoise, lack_of_fit, model_noise, unit_draws, window_variance

ROOT = Path(__file__).resolve().parents[2]


def test_pooled_sd_and_degrees_of_freedom():
    noise = SeedNoise.pooled([[1.0, 1.2], [2.0, 2.1, 2.2], [5.0]])  # a group of one adds nothing
    ss = 0.02 + 0.02
    assert noise.df == 3 and noise.groups == 2 and noise.sd == pytest.approx(np.sqrt(ss / 3))
    assert SeedNoise.pooled([[1.0], [2.0]]).df == 0


def test_window_part_is_taken_off_and_never_below_zero():
    noise = SeedNoise.pooled([[1.0, 1.2, 1.1]], window_var=0.005)
    assert noise.seed_sd == pytest.approx(np.sqrt(0.01 - 0.005))
    assert SeedNoise.pooled([[1.0, 1.01]], window_var=1.0).seed_sd == 0.0
    sd = SeedNoise.pooled([[1.0, 1.01]], window_var=1.0).sd_draws(1000)
    assert np.all(sd >= 0)


def test_sd_draws_carry_the_uncertainty_of_few_repeats():
    few, many = SeedNoise(0.01, 2), SeedNoise(0.01, 200)
    a, b = few.sd_draws(20000), many.sd_draws(20000)
    assert np.median(b) == pytest.approx(0.01, rel=0.02)
    assert np.quantile(a, 0.95) > 2 * np.quantile(b, 0.95)  # with 2 degrees of freedom the sd may be far larger
    assert np.all(SeedNoise(0.0, 0).sd_draws(10) == 0)


def test_misfit_pools_the_law_residuals_with_the_repeats():
    noise = SeedNoise(0.01, 3)
    wider = noise.with_misfit(sse=0.01, df_law=1)  # residuals of 0.1 nats against seed noise of 0.01
    assert wider.df == 4 and wider.sd == pytest.approx(np.sqrt((3e-4 + 0.01) / 4))
    assert noise.with_misfit(0.5, 0) is noise
    assert lack_of_fit(0.01, 1, noise)["p"] < 0.01 and lack_of_fit(1e-4, 1, noise)["p"] > 0.2
    assert lack_of_fit(0.01, 0, noise) is None and lack_of_fit(0.01, 1, SeedNoise(0.0, 0)) is None


def test_a_run_draws_the_same_noise_wherever_it_appears():
    sd = np.full(500, 0.02)
    assert np.array_equal(unit_draws("run-a", 500), unit_draws("run-a", 500))
    assert not np.array_equal(unit_draws("run-a", 500), unit_draws("run-b", 500))
    ens = model_noise(["a", "b", "c", "d"], sd)  # an ensemble: the mean of its members' noise
    one = model_noise(["a"], sd)
    assert np.std(ens) == pytest.approx(0.01, rel=0.15) and np.corrcoef(ens, one)[0, 1] > 0.3
    assert np.all(model_noise([], sd) == 0)


def test_window_variance_is_half_a_difference_variance():
    rng = np.random.default_rng(0)
    common = rng.normal(0, 1.0, (4000, 1))
    draws = common + rng.normal(0, 0.1, (4000, 3))  # each run's own part: sd 0.1
    assert window_variance(draws) == pytest.approx(0.01, rel=0.1)
    assert window_variance(draws[:, :1]) == 0.0


def _coverage_module():
    spec = importlib.util.spec_from_file_location("interval_coverage", ROOT / "benchmarks" / "interval_coverage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_multiple_intervals_cover_the_true_multiple():
    """On synthetic references with a known truth (seed noise, window noise, a bent reference), the bench's
    multiple intervals cover the true multiple near the claimed 95%; val windows alone fall far short."""
    cov = _coverage_module()
    now = cov.coverage(120, 200, bump=0.01)
    before = cov.coverage(120, 200, bump=0.01, seed_noise_on=False)
    for kind in ("parametric", "empirical"):
        assert 0.9 <= now[kind]["coverage"] <= 1.0, (kind, now)
        assert before[kind]["coverage"] < now[kind]["coverage"] - 0.1, (kind, before, now)
