"""The planner: compute-optimal rows for budgets and target losses, with intervals from a fit's draws."""

from __future__ import annotations

import numpy as np
import pytest

from scarce.errors import UserError
from scarce.scaling.laws import Estimate, Fit
from scarce.scaling.plan import format_plan, plan, plan_to_json_dict


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
    with pytest.raises(UserError, match="budget or target"):
        plan(true_law)
