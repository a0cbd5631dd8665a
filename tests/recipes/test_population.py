"""The population recipe: cyclic trajectories against independent members, allocation curves, the learned prior."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from scarce.errors import UserError
from scarce.recipes import run_recipe
from scarce.recipes.population import epochs_to_reach, reach_ratio


def test_epochs_to_reach_interpolates_in_log_epochs():
    assert epochs_to_reach([1, 2, 4], [3.0, 2.0, 1.0], 2.0) == 2
    assert math.isclose(epochs_to_reach([1, 4], [3.0, 1.0], 2.0), 2.0)  # halfway in log epochs
    assert epochs_to_reach([1, 2], [1.0, 0.5], 2.0) == 1  # already below: the first point, an upper bound
    assert epochs_to_reach([1, 2], [3.0, 2.5], 2.0) == math.inf


def test_reach_ratio_and_its_interval():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 400)
    target = 300 + noise  # loss 300 / 100 tokens = 3.0 per token
    curve = [400 + noise, 250 + noise]  # 4.0 at 1 epoch, 2.5 at 2 epochs: reaches 3.0 at 2^(2/3) epochs
    r = reach_ratio([1, 2], curve, target, 8, tokens_per_window=100, n_boot=200)
    assert math.isclose(r["value"], 8 / 2 ** (2 / 3)) and r["low"] <= r["value"] <= r["high"] and not r["censored"]
    never = reach_ratio([1, 2], [400 + noise, 350 + noise], target, 8, 100, n_boot=50)
    assert never["value"] == 0 and never["censored"] == "below"


def test_population_recipe_trains_and_measures_both_curves(make_context):
    ctx = make_context(sizes=[1])
    out = run_recipe("population", ctx.data, ctx.out, sizes=[1], overrides=ctx.overrides, execution=ctx.execution,
                     log=lambda *a: None, trajectories=2, cycles=3, cycle_epochs=1.0, members=2, perturb=0.1,
                     chain_alpha=0.45, top_k=[1, 2])
    r = out["best"][1]
    assert [p["epochs"] for p in r["population_curve"]] == [2.0, 4.0, 6.0]
    assert [p["members"] for p in r["population_curve"]] == [2, 4, 6]
    assert [p["epochs"] for p in r["independent_curve"]] == [3.0, 6.0]
    for p in r["population_curve"]:
        assert all(math.isfinite(p[k]) for k in ("uniform_logit", "prior", "uniform_prob"))
        assert p["prior_select"] <= p["uniform_select"] + 1e-9  # the prior is fitted on select: never worse there
        assert p["prior_k"] in (1, 2, p["members"])
    assert set(r["reach"]) == {"prior", "logit"} and r["reach"]["prior"]["target_epochs"] == 6.0
    windows = np.load(Path(r["windows"]))
    assert windows["population_prior_3"].shape == (r["val_windows"],)
    # the FLOPs axis: each cycle's snapshots record the run's FLOPs up to them (the chain's teacher forwards, from
    # cycle 1 on, included), the last one the run's own; the members' are their runs'
    runs = [t["flops"] for t in r["trajectories"]]
    assert r["population_curve"][-1]["flops"] == pytest.approx(sum(runs))
    f = [p["flops"] for p in r["population_curve"]]
    assert f[0] > 0 and f[2] - f[1] == pytest.approx(f[1] - f[0])  # cycles 1 and 2 both have the teacher
    assert f[1] - f[0] > f[0]  # cycle 0 had none: a third of a step's FLOPs more per token after it
    assert r["independent_curve"][-1]["flops"] == pytest.approx(sum(m["flops"] for m in r["members"]))
    assert set(r["reach_flops"]) == {"prior", "logit"}
    assert r["reach_flops"]["prior"]["target_epochs"] == pytest.approx(r["independent_curve"][-1]["flops"])
    assert json.loads((Path(ctx.out) / "recipe.json").read_text())["recipe"] == "population"
    again = run_recipe("population", ctx.data, ctx.out, sizes=[1], overrides=ctx.overrides, execution=ctx.execution,
                       log=lambda *a: None, trajectories=2, cycles=3, cycle_epochs=1.0, members=2, perturb=0.1,
                       chain_alpha=0.45, top_k=[1, 2])
    assert again["best"][1]["population_curve"] == r["population_curve"]  # done runs are reused


def test_population_recipe_refuses_bad_options(make_context):
    ctx = make_context(sizes=[1])
    with pytest.raises(UserError, match="must be >= 1"):
        run_recipe("population", ctx.data, ctx.out, sizes=[1], overrides=ctx.overrides, execution=ctx.execution,
                   log=lambda *a: None, trajectories=0)
