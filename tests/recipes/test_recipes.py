"""Recipes as sweep generators (with a fake trainer), the crossing check, and one real tiny recipe."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scarce.cli.main import main
from scarce.errors import UserError
from scarce.recipes import run_recipe
from scarce.recipes.common import point_config
from scarce.recipes.crossing import find_crossings
from scarce.recipes.isoflop import flops_per_token_at
from scarce.runs.launch import resolved_id
from scarce.runs.store import RunRow, RunStore
from scarce.runs.sweep import SweepSpec, build_config, resolve_points


def fake_train(cfg, run_dir, results):
    """Loss falls with depth, tokens and a good (lr, wd); writes a val curve for the crossing check."""
    d, o, t = cfg.model.depth, cfg.optim, cfg.train
    tokens = t.tokens or 1000 * (t.epochs or 1)
    loss = 3 / d + math.log2(o.lr / 2e-3) ** 2 + 0.1 * abs(math.log2(o.weight_decay / 0.1)) + 1000 / tokens
    curve = [{"type": "eval", "step": k, "tokens_seen": 100 * k, "val_loss": loss + 1 / k} for k in (1, 2, 3)]
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
    return {"select_loss": loss, "val_loss": loss, "params": 1000 * d, "tokens_seen": tokens,
            "flops": 6000 * d * tokens, "seed": t.seed}


def recipe(make_context, name, **options):
    ctx = make_context(sizes=[1, 2], train_fn=fake_train)
    return run_recipe(name, ctx.data, ctx.out, sizes=ctx.sizes, overrides=ctx.overrides, execution=ctx.execution,
                      train_fn=fake_train, log=lambda *a: None, **options), ctx


def test_standard_tunes_lr_and_epochs_at_fixed_weight_decay(make_context):
    out, ctx = recipe(make_context, "standard", lrs=[1e-3, 2e-3], epochs=[1, 4])
    assert out["best"][2]["config"] == {"optim.lr": 2e-3, "optim.weight_decay": 0.1, "train.epochs": 4}
    assert out["crossings"] == [] and (Path(ctx.out) / "recipe.json").exists()
    assert len(RunStore(ctx.results).list(sweep="standard", where={"optim.weight_decay": 0.1})) == 8


def test_ensemble_members_start_from_the_certified_optimum(make_context):
    out, ctx = recipe(make_context, "ensemble", members=3, evaluate=False)
    r = out["best"][1]
    assert r["base"]["optim.lr"] == 2e-3 and len(r["members"]) == 3 and len(r["ensembles"][2]) == 2
    members = RunStore(ctx.results).list(sweep="ensemble", group="ensemble-d1")
    assert sorted(m.config.train.seed for m in members) == [0, 1, 2]
    assert {m.config.train.epochs for m in members} == {2 * r["base"]["train.epochs"]}
    assert {m.config.optim.weight_decay for m in members} == {0.5 * r["base"]["optim.weight_decay"]}

    joint, _ = recipe(make_context, "joint", members=2, base={"1": r["base"], "2": r["base"]}, evaluate=False)
    assert [(row["depth"], row["members"]) for row in joint["table"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_joint_trains_and_evaluates_real_ensembles(make_context):
    ctx = make_context(sizes=[1])
    base = {1: {"optim.lr": 3e-3, "optim.weight_decay": 0.2, "train.epochs": 0.05}}
    out = run_recipe("joint", ctx.data, ctx.out, sizes=[1], overrides=ctx.overrides, execution=ctx.execution,
                     log=lambda *a: None, members=2, base=base)
    losses = out["best"][1]["val_loss"]
    assert set(losses) == {1, 2} and all(math.isfinite(v) for v in losses.values())
    rows = (Path(ctx.out) / "joint.csv").read_text().splitlines()
    assert rows[0].startswith("depth,params,members,loss") and len(rows) == 3


def test_isoflop_sets_each_horizon_from_its_budget(make_context):
    out, ctx = recipe(make_context, "isoflop", budgets=[1e9, 3e9])
    fpt = flops_per_token_at(ctx, 2)
    rows = RunStore(ctx.results).list(sweep="isoflop", where={"model.depth": 2})
    assert sorted(r.config.train.tokens for r in rows) == [int(1e9 / fpt), int(3e9 / fpt)]
    assert set(out["best"]) == {1e9, 3e9} and len(out["table"]) == 4
    header = (Path(ctx.out) / "isoflop.csv").read_text().splitlines()[0].split(",")
    assert {"params", "tokens", "flops", "loss"} <= set(header)
    with pytest.raises(UserError, match="budgets"):
        recipe(make_context, "isoflop")


def test_data_scaling_uses_nested_stores(make_context):
    out, ctx = recipe(make_context, "data-scaling", data_sizes=[2000, 6000], lrs=[2e-3], epochs=[1])
    assert set(out["best"]) == {2000, 6000} and [row["tokens"] for row in out["table"]] == [2000, 6000]
    assert (Path(ctx.out) / "data-scaling.csv").read_text().startswith("tokens,loss,")
    assert (Path(ctx.out) / "stores" / "train-2000" / "manifest.json").exists()


def test_unknown_option_and_recipe(make_context):
    with pytest.raises(UserError, match="unknown option 'memebrs'"):
        recipe(make_context, "ensemble", memebrs=2)
    assert main(["recipe", "nope", "--data", "x", "--out", "y"]) == 2


def write_curve(path: Path, points: list[tuple[int, float]]) -> str:
    path.mkdir(parents=True)
    lines = [json.dumps({"type": "eval", "step": i, "tokens_seen": t, "val_loss": v}) for i, (t, v) in enumerate(points)]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return str(path)


def test_crossing_check_flags_a_larger_model_above_a_smaller_one(tmp_path):
    small = write_curve(tmp_path / "s", [(100, 5.0), (200, 4.0), (300, 3.5)])
    good = write_curve(tmp_path / "g", [(100, 4.8), (200, 3.8), (300, 3.2)])
    bad = write_curve(tmp_path / "b", [(100, 4.9), (250, 3.9), (300, 3.6)])
    row = lambda i, p, d, sel=1.0: RunRow(i, "done", d, {}, sweep="f", data="x", params=p, select_loss=sel)
    assert find_crossings([row("s", 10, small), row("g", 20, good)]) == []
    found = find_crossings([row("s", 10, small), row("g", 20, good), row("b", 30, bad)])
    assert [(c["smaller"], c["larger"]) for c in found] == [("s", "b"), ("g", "b")]
    assert found[0]["tokens"] == 250 and found[0]["excess"] == pytest.approx(3.9 - 3.75)
    # a worse run of the same size (higher select loss) does not represent its size
    assert find_crossings([row("s", 10, small), row("g", 20, good), row("b", 20, bad, sel=2.0)]) == []


def test_recipe_cli_trains_a_tiny_miniseries(tiny_store, tmp_path, capsys):
    args = ["recipe", "miniseries", "--data", str(tiny_store.path), "--sizes", "1", "2", "--out", str(tmp_path / "o"),
            "--results", str(tmp_path / "r"), "--threads", "1", "--option", "ratio=0.02",
            "--set", "model.aspect_ratio=32", "--set", "model.head_dim=16", "--set", "model.seq_len=32",
            "--set", "train.batch_size=4", "--set", "train.eval_tokens=256"]
    assert main(args) == 0
    result = json.loads((tmp_path / "o" / "recipe.json").read_text())
    assert set(result["best"]) == {"1", "2"} and "crossings" in result
    capsys.readouterr()
    assert main(["runs", "--results", str(tmp_path / "r"), "--sweep", "miniseries", "--status", "done", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_runs_crossings_flag(tiny_store, tmp_path, capsys):
    store = RunStore(tmp_path / "r")
    for i, (params, curve) in enumerate([(10, [(100, 5.0), (300, 3.5)]), (20, [(100, 4.9), (300, 3.7)])]):
        run_dir = write_curve(tmp_path / f"run{i}", curve)
        store.start(f"id{i}", {"tags": {"sweep": "f"}}, run_dir, "x")
        store.finish(f"id{i}", {"params": params, "select_loss": 1.0, "val_loss": curve[-1][1]}, run_dir)
    assert main(["runs", "--results", str(tmp_path / "r"), "--crossings"]) == 0
    assert "crossing: id1 (20 params)" in capsys.readouterr().out
    assert main(["runs", "--results", str(tmp_path / "r"), "--crossings", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["larger"] == "id1"


def test_point_config_keeps_its_run_ids():
    """The one config builder (runs.sweep.build_config) gives the ids the recipes' and the sweep's configs had when
    each forged a sweep spec of its own (hashes pinned from that code)."""
    cfg = point_config({"model.depth": 3, "train.tokens": 12345, "tags.budget": 1e12}, data="/nowhere/store",
                       preset="tiny", overrides={"optim.lr": 2e-3, "train.epochs": 2})
    assert cfg.run_id("fp") == "4aa4123759936907" and cfg.tags["sweep"] == "point"
    cfg = build_config("tiny", "/nowhere/store", {"optim.lr": 2e-3, "model.depth": 2, "data": "/other/store",
                                                  "tags.x": "y"}, "grid")
    assert cfg.run_id("fp") == "21a6f15e83dd9553" and cfg.data == "/other/store" and cfg.tags["sweep"] == "grid"


def test_point_config_is_the_config_a_sweep_named_point_trains(tiny_store):
    """The point's horizon replaces the overrides' as the sweep's merge has it (a plain dict merge kept both, and the
    later of the preset's horizon fields won)."""
    overrides, point = {"train.tokens_per_param": 5.0, "model.width": 64}, {"model.depth": 1, "train.epochs": 2.0}
    cfg = point_config(point, data=str(tiny_store.path), preset="tiny", overrides=overrides)
    assert (cfg.train.epochs, cfg.train.tokens_per_param, cfg.train.tokens) == (2.0, 0, 0)
    swept = resolve_points(SweepSpec(name="point", data=str(tiny_store.path), preset="tiny", set=overrides,
                                     points=[point]))
    assert [p.run_id for p in swept] == [resolved_id(cfg)[1]]
