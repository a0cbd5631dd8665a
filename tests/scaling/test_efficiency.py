"""Data efficiency: parametric (inverted reference fit) and empirical (interpolated reference curve)."""

from __future__ import annotations

import numpy as np
import pytest

from scarce.errors import UserError
from scarce.scaling.efficiency import (
    empirical_efficiency,
    empirical_frontier,
    fit_efficiency,
    interpolate_tokens,
    tokens_for_loss,
)
from scarce.scaling.laws import FitWarning, power_law

REF = {"E": 2.0, "A": 200.0, "alpha": 0.3}


@pytest.fixture
def reference(rng):
    D = np.geomspace(1e8, 1e10, 10)
    return D, power_law(D, **REF) + rng.normal(0, 0.003, D.size)


def test_tokens_for_loss_inverts_power_law():
    D = np.array([1e8, 1e9, 1e10])
    assert tokens_for_loss(power_law(D, **REF), **REF) == pytest.approx(D)
    assert tokens_for_loss(1.9, **REF) == np.inf  # below the asymptote: never reached


def test_parametric_efficiency_recovers_known_factor(reference):
    D, L = reference
    target = float(power_law(3e9, **REF))  # the new recipe reaches at 1e9 what the reference needs 3e9 for
    fit = fit_efficiency(D, L, target, 1e9, n_boot=300, seed=0)
    assert fit.value("efficiency") == pytest.approx(3.0, rel=0.1)
    assert fit["efficiency"].low < 3.0 < fit["efficiency"].high
    assert fit.value("D_ref") == pytest.approx(3e9 * fit.value("efficiency") / 3.0)
    assert not fit.flags


def test_parametric_efficiency_flags_extrapolation_and_unreachable(reference):
    D, L = reference
    with pytest.warns(FitWarning):
        fit = fit_efficiency(D, L, 1.95, 1e9, n_boot=100)
    assert fit.flags["extrapolated"] and fit.flags["unreachable"]
    assert fit.value("efficiency") == np.inf
    assert fit.to_json_dict()["efficiency"]["value"] is None  # JSON has no infinity


def test_empirical_frontier_keeps_only_improvements():
    t = np.array([1.0, 2, 3, 4, 5])
    loss = np.array([3.0, 2.5, 2.7, 2.4, 2.4])
    ft, fl = empirical_frontier(t, loss)
    assert ft.tolist() == [1.0, 2.0, 4.0] and fl.tolist() == [3.0, 2.5, 2.4]


def test_empirical_interpolation_is_exact_at_points_and_log_linear_between():
    ft, fl = np.array([1e8, 1e9]), np.array([3.0, 2.5])
    assert interpolate_tokens(ft, fl, 3.0) == (pytest.approx(1e8), False)
    mid = np.exp((np.log(3.0) + np.log(2.5)) / 2)  # halfway in log loss -> halfway in log tokens
    assert interpolate_tokens(ft, fl, mid)[0] == pytest.approx(np.sqrt(1e8 * 1e9))


def test_empirical_efficiency_inside_and_outside_the_curve(reference):
    D, L = reference
    inside = float(L[4])  # a reference loss itself: D_ref is that run's tokens
    fit = empirical_efficiency(D, L, inside, D[4] / 2, n_boot=200, seed=0)
    assert fit.value("efficiency") == pytest.approx(2.0)
    assert not fit.flags.get("extrapolated")
    with pytest.warns(FitWarning, match="outside"):
        out = empirical_efficiency(D, L, float(L.min()) - 0.05, 1e9, n_boot=50)
    assert out.flags["extrapolated"]
    assert out.value("D_ref") > D.max()


def test_efficiency_rejects_bad_inputs(reference):
    D, L = reference
    with pytest.raises(UserError, match="positive"):
        fit_efficiency(D, L, 2.5, -1.0)
    with pytest.raises(UserError):
        empirical_efficiency([1e8], [3.0], 2.5, 1e8)
