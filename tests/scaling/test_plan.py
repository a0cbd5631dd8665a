"""The planner: compute-optimal rows for budgets and target losses, with intervals from a fit's draws."""

from __future__ import annotations

import numpy as np
import pytest

from scarce.errors import UserError
from scarce.scaling.laws import Estimate, Fit
from scarce.scaling.plan import core_warnings, fit_core_map, format_plan, plan, plan_to_json_dict


def test_plan_for_budget_and_target(true_law):
    rows = plan(true_law, budgets=[5.76e23], target_losses=[2.1], flops_per_s=1e15, mfu=0.5)
    chin = rows[0].columns
    assert chin["params"].value * chin["tokens"].value * 6 == pytest.approx(5.76e23)
    assert 5e10 < chin["params"].value < 1e11  # Chinchilla itself: 70B params at this budget
    assert chin["hours"].value == pytest.approx(5.76e23 / 0.5e15 / 3600)
    target = rows[1].columns
    assert target["loss"].value == pytest.approx(2.1)
    assert np.isnan(target["params"].low)  # a plain law has no draws, so no interval
    assert "C=5.76e+23" in format_plan(rows)


def test_plan_intervals_from_draws(true_law):
    rng = np.random.default_rng(0)
    draws = {k: v * np.exp(rng.normal(0, 0.01, 200)) for k, v in true_law.items()}
    fit = Fit("chinchilla3", {k: Estimate(v, np.nan, np.nan) for k, v in true_law.items()}, 240, 200, 0,
              draws=draws)
    rows = plan(fit, budgets=[1e22])
    p = rows[0].columns["params"]
    assert p.low < p.value < p.high
    js = plan_to_json_dict(rows)
    assert set(js["C=1e+22:params"]) == {"value", "low", "high"}


def test_plan_rejects_unreachable_target(true_law):
    with pytest.raises(UserError, match="asymptote"):
        plan(true_law, target_losses=[1.5])
    with pytest.raises(UserError, match="budget, target loss or target CORE"):
        plan(true_law)


def test_plan_for_a_target_core_goes_through_the_map(true_law):
    """Runs on CORE = 1.3 - 0.5·loss exactly: CORE 0.2 is loss 2.2, so its row is the row of target loss 2.2."""
    loss = np.array([2.3, 2.4, 2.6, 2.9])
    cmap = fit_core_map(loss, 1.3 - 0.5 * loss, n_boot=100)
    assert (cmap.a, cmap.b) == (pytest.approx(1.3), pytest.approx(-0.5))
    by_core, by_loss = plan(true_law, target_cores=[0.2], target_losses=[2.2], core_map=cmap, flops_per_s=1e15)[::-1][:2]
    assert by_core.label == "CORE=0.2"
    for col in ("flops", "params", "hours", "loss"):
        assert by_core.columns[col].value == pytest.approx(by_loss.columns[col].value)
    assert cmap.core_range == (pytest.approx(-0.15), pytest.approx(0.15))
    assert core_warnings([0.1, 0.2], cmap) == [
        "CORE 0.2 is outside the map's runs (-0.15-0.15): its target loss is an extrapolation"]
    with pytest.raises(UserError, match="needs a CORE map"):
        plan(true_law, target_cores=[0.2])
    with pytest.raises(UserError, match="does not fall"):
        fit_core_map(loss, 0.5 * loss)
    with pytest.raises(UserError, match="at least 3 runs"):
        fit_core_map(loss[:2], loss[:2])


def test_core_interval_carries_the_map_noise(true_law):
    """Draw i of the law is paired with draw i of the map: a noisy map widens the compute's interval."""
    rng = np.random.default_rng(1)
    draws = {k: v * np.exp(rng.normal(0, 0.002, 300)) for k, v in true_law.items()}
    fit = Fit("chinchilla3", {k: Estimate(v, np.nan, np.nan) for k, v in true_law.items()}, 240, 300, 0, draws=draws)
    loss = np.linspace(2.15, 2.6, 12)
    exact = fit_core_map(loss, 1.3 - 0.5 * loss, n_boot=300)
    noisy = fit_core_map(loss, 1.3 - 0.5 * loss + rng.normal(0, 0.01, loss.size), n_boot=300)
    flops = lambda m: plan(fit, target_cores=[0.2], core_map=m)[0].columns["flops"]
    width = lambda m: np.log(flops(m).high / flops(m).low)
    assert width(noisy) > 1.5 * width(exact) > 0
