"""Certified coordinate descent: on synthetic objectives with known optima, directly and through the
regularized recipe with a fake trainer (a cheap synthetic objective in place of training)."""

from __future__ import annotations

import math

from scarce.errors import Diverged
from scarce.recipes.descent import certified_descent, neighbours
from scarce.recipes.regularized import regularized
from scarce.runs.store import RunStore

AXES = {"lr": [1, 2, 3, 4, 5, 6], "wd": [0.1, 0.2, 0.4, 0.8, 1.6], "epochs": [1, 2, 4, 8]}


def bowl(p: dict) -> float:
    """Convex and separable in grid coordinates: the grid optimum is lr=5, wd=0.8, epochs=2."""
    return (p["lr"] - 5) ** 2 + math.log2(p["wd"] / 0.8) ** 2 + 0.5 * math.log2(p["epochs"] / 2) ** 2


def test_descent_finds_and_certifies_the_known_optimum():
    calls = []

    def evaluate(points):
        calls.append(len(points))
        return [bowl(p) for p in points]

    r = certified_descent(AXES, evaluate)
    assert r["best"] == {"lr": 5, "wd": 0.8, "epochs": 2} and r["certified"] and r["loss"] == 0
    assert r["path"][0]["point"] == {"lr": 4, "wd": 0.4, "epochs": 4}  # the middle of each axis
    assert [s["loss"] for s in r["path"]] == sorted((s["loss"] for s in r["path"]), reverse=True)
    assert len(r["certificate"]) == 6 and all(c["loss"] > r["loss"] for c in r["certificate"])
    assert r["evaluations"] == sum(calls)  # nothing evaluated twice
    assert r["evaluations"] < 6 * 5 * 4


def test_descent_on_two_basins_certifies_a_local_optimum():
    """Two basins: from the left the descent stops at the local optimum, and says so honestly."""
    axes = {"x": list(range(10)), "y": [0, 1, 2]}
    f = lambda p: min((p["x"] - 1) ** 2, (p["x"] - 8) ** 2 - 3) + (p["y"] - 1) ** 2
    r = certified_descent(axes, lambda ps: [f(p) for p in ps], start={"x": 3, "y": 0})
    assert r["best"] == {"x": 1, "y": 1} and r["certified"]
    idx = (1, 1)
    assert {tuple(c["point"].values()) for c in r["certificate"]} == set(neighbours(idx, (10, 3)))


def test_failed_neighbour_leaves_the_point_uncertified():
    r = certified_descent({"a": [0, 1, 2]}, lambda ps: [math.nan if p["a"] == 2 else abs(p["a"] - 1) for p in ps])
    assert r["best"] == {"a": 1} and not r["certified"]


def test_diverged_neighbour_is_worse_and_certifies():
    r = certified_descent({"a": [0, 1, 2]}, lambda ps: [math.inf if p["a"] == 2 else abs(p["a"] - 1) for p in ps])
    assert r["best"] == {"a": 1} and r["certified"]


def test_failed_points_are_never_chosen():
    # every neighbour of the start failed: the descent stays, uncertified
    r = certified_descent({"a": [0, 1, 2]}, lambda ps: [1.0 if p["a"] == 1 else math.nan for p in ps])
    assert r["best"] == {"a": 1} and r["loss"] == 1.0 and not r["certified"]


def target_trainer(cfg, run_dir, results):
    """The fake trainer: select loss from (lr, wd, epochs), optimum at lr 4e-3, wd 1.6, 8 epochs."""
    loss = (math.log2(cfg.optim.lr / 4e-3) ** 2 + math.log2(cfg.optim.weight_decay / 1.6) ** 2
            + math.log2(cfg.train.epochs / 8) ** 2 + cfg.model.depth)
    return {"select_loss": loss, "val_loss": loss, "params": 1000 * cfg.model.depth}


def test_regularized_recipe_certifies_per_size_and_resumes(make_context):
    ctx = make_context(sizes=[1, 2], train_fn=target_trainer)
    out = regularized(ctx)
    for depth in (1, 2):
        r = out["best"][depth]
        assert r["best"] == {"optim.lr": 4e-3, "optim.weight_decay": 1.6, "train.epochs": 8} and r["certified"]
        assert r["run"]["select_loss"] == depth and len(r["path"]) >= 2
    store = RunStore(ctx.results)
    n = len(store.list(sweep="regularized", status="done"))
    assert n == out["best"][1]["evaluations"] + out["best"][2]["evaluations"]
    again = regularized(ctx)  # every point is done: the same result with no new runs
    assert again["best"][1]["path"] == out["best"][1]["path"]
    assert len(store.list(sweep="regularized")) == n


def test_a_diverged_learning_rate_is_a_result_that_certifies(make_context):
    def trainer(cfg, run_dir, results):
        if cfg.optim.lr > 4e-3:
            raise Diverged("training diverged at step 3 (loss nan, gradient norm nan)")
        return target_trainer(cfg, run_dir, results)

    ctx = make_context(sizes=[1], train_fn=trainer)
    out = regularized(ctx, lrs=[2e-3, 4e-3, 8e-3], start={"optim.lr": 4e-3, "optim.weight_decay": 1.6,
                                                          "train.epochs": 8})
    r = out["best"][1]
    assert r["best"]["optim.lr"] == 4e-3 and r["certified"]
    assert any(c["loss"] == math.inf for c in r["certificate"])
    assert [x["status"] for x in RunStore(ctx.results).list(sweep="regularized") if x["status"] != "done"] == \
        ["diverged"]
