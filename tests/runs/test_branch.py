"""Epoch grids by branching: a shorter run continued from the longest run's checkpoint at its decay start equals
the same run trained alone, bit for bit on CPU; it is its own run (id, folder, row) and resumes like one."""

from __future__ import annotations

import json

import pytest
import torch

from scarce import rundir
from scarce.config import apply_overrides
from scarce.runs import branch
from scarce.runs.launch import resume, train
from scarce.runs.store import RunStore
from scarce.runs.sweep import run_sweep
from tests.conftest import make_tiny_config

WSD = {"optim.schedule": "wsd", "optim.warmup_frac": 0.0, "optim.warmdown_frac": 0.3, "train.eval_every": 10**9,
       "model.dropout": 0.1, "train.log_every": 2, "optim.weight_decay": 0.8}


def _weights(run_dir):
    return rundir.load_weights(rundir.best_weights(run_dir))


def _evals(run_dir):
    return [r for r in rundir.read_metrics(run_dir) if r.get("type") == "eval"]


def _same(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ea, eb = _evals(a), _evals(b)
    assert ea == eb and len(ea) == 1


@pytest.fixture(scope="module")
def trunk(tiny_store, tmp_path_factory):
    """The 3-epoch run of the setting, keeping a checkpoint at the 1.5-epoch run's decay start."""
    root = tmp_path_factory.mktemp("branch")
    make = lambda epochs: apply_overrides(_cfg(tiny_store), {"train.epochs": epochs})
    short = make(1.5)
    steps = branch.horizon_steps(short)
    start = branch.decay_start(short, steps)
    long = make(3.0)
    long.train.branch_steps = [start]
    train(long, root / "trunk", root / "res", quiet=True)
    return root, short, start


def _cfg(store):
    return make_tiny_config(store, **WSD)


def test_a_branched_run_equals_the_run_trained_alone(trunk):
    root, short, start = trunk
    assert 0 < start < branch.horizon_steps(short)
    checkpoint = rundir.branch_checkpoint(root / "trunk", start)
    alone = train(short, root / "alone", root / "res", quiet=True)
    branched = train(short, root / "branched", root / "res", quiet=True, branch_from=str(checkpoint))
    _same(root / "alone", root / "branched")
    assert branched["run_id"] == alone["run_id"] and branched["val_loss"] == alone["val_loss"]
    assert {k: branched["branched_from"][k] for k in ("trunk", "step")} == {"trunk": str(root / "trunk"), "step": start}
    assert 0 < rundir.own_seconds(branched) < branched["wall_seconds"]
    train_records = lambda d: [(r["step"], r["loss"], r["lr"]) for r in rundir.read_metrics(d) if r["type"] == "train"]
    assert train_records(root / "alone") == train_records(root / "branched")  # the trunk's records up to the branch
    store = RunStore(root / "res")
    rows = [r for r in store.list() if r.id == alone["run_id"]]
    store.close()
    assert sorted(r.run_dir.rsplit("/", 1)[-1] for r in rows) == ["alone", "branched"]


def test_a_branched_run_killed_in_its_decay_resumes_to_the_same_weights(trunk):
    root, short, start = trunk
    checkpoint = rundir.branch_checkpoint(root / "trunk", start)
    if not (root / "alone").exists():
        train(short, root / "alone", root / "res", quiet=True)
    assert train(short, root / "killed", root / "res", quiet=True, branch_from=str(checkpoint),
                 stop_at_step=start + 2) is None
    resume(root / "killed", quiet=True)
    _same(root / "alone", root / "killed")


def test_a_longer_run_continues_from_a_shorter_runs_stable_checkpoint(trunk):
    """Before its own decay a run of 2 epochs is the 1.5-epoch run's stable phase too: from that checkpoint it
    ends as it does alone."""
    root, short, start = trunk
    longer = apply_overrides(short, {"train.epochs": 2.0})
    assert start < branch.decay_start(longer, branch.horizon_steps(longer))
    train(longer, root / "longer-alone", root / "res", quiet=True)
    train(longer, root / "longer-branched", root / "res", quiet=True,
          branch_from=str(rundir.branch_checkpoint(root / "trunk", start)))
    _same(root / "longer-alone", root / "longer-branched")


def test_a_branch_past_the_decay_start_or_of_another_schedule_is_refused(trunk):
    root, short, start = trunk
    checkpoint = rundir.branch_checkpoint(root / "trunk", start)
    shorter = apply_overrides(short, {"train.epochs": 1.0})
    with pytest.raises(Exception, match="past this run.s decay start"):
        train(shorter, root / "too-short", root / "res", quiet=True, branch_from=str(checkpoint))
    assert not (root / "too-short").exists()  # refused before anything was written
    cosine = apply_overrides(short, {"optim.schedule": "cosine"})
    with pytest.raises(Exception, match="not wsd"):
        train(cosine, root / "cosine", root / "res", quiet=True, branch_from=str(checkpoint))


def test_what_cannot_branch_says_why(tiny_store):
    cfg = _cfg(tiny_store)
    assert branch.not_branchable(cfg) is None
    for overrides, why in [({"optim.schedule": "cosine"}, "not wsd"), ({"optim.warmup_frac": 0.1}, "warmup"),
                           ({"train.eval_every": 0}, "eval_every"), ({"optim.ema_decay": 0.99}, "weight average"),
                           ({"train.compile": "auto"}, "compile auto"), ({"optim.wd_schedule": "record"}, "record spans"),
                           ({"optim.swa_epochs": 1}, "swa_epochs")]:
        assert why in branch.not_branchable(apply_overrides(cfg, overrides))


def test_plan_branches_groups_runs_of_one_setting(tiny_store):
    base = _cfg(tiny_store)
    configs = [apply_overrides(base, {"train.epochs": e, "optim.lr": lr}) for e, lr in
               [(1, 1e-3), (4, 1e-3), (2, 1e-3), (2, 3e-3), (1, 3e-3)]]
    configs.append(apply_overrides(base, {"train.epochs": 1, "optim.schedule": "cosine"}))
    steps = [branch.horizon_steps(c) for c in configs]
    plan = branch.plan_branches(configs, ["f"] * len(configs), steps)
    assert set(plan.trunk_steps) == {1, 3} and set(plan.branches) == {0, 2, 4}
    assert plan.branches[0] == (1, branch.decay_start(configs[0], steps[0]))
    assert plan.trunk_steps[1] == sorted(branch.decay_start(configs[i], steps[i]) for i in (0, 2))


def test_a_sweep_over_epochs_trains_the_stable_phase_once(tiny_store, tmp_path):
    """The sweep trains the 3-epoch run with checkpoints for the others, which continue from them; a second
    sweep of the same grid finds every point done."""
    spec = {"name": "b", "data": str(tiny_store.path), "set": {**WSD, "model.depth": 2, "model.head_dim": 16,
                                                               "model.seq_len": 64, "train.batch_size": 8,
                                                               "train.threads": 1},
            "grid": {"train.epochs": [1.0, 2.0, 3.0]}, "out": str(tmp_path / "runs"),
            "results": str(tmp_path / "results")}
    report = run_sweep(spec, log=lambda *a: None)
    assert len(report.ran) == 3 and report.complete
    summaries = {p.overrides["train.epochs"]: json.loads((p.run_dir / rundir.SUMMARY).read_text())
                 for p in report.points}
    assert "branched_from" not in summaries[3.0]
    assert {summaries[e]["branched_from"]["step"] for e in (1.0, 2.0)} == {
        branch.decay_start(p.config, branch.horizon_steps(p.config)) for p in report.points
        if p.overrides["train.epochs"] < 3}
    trunk = next(p for p in report.points if p.overrides["train.epochs"] == 3.0)
    assert json.loads((trunk.run_dir / rundir.CONFIG).read_text())["train"]["branch_steps"]
    alone = train(make_tiny_config(tiny_store, **WSD, **{"train.epochs": 2.0}), tmp_path / "alone",
                  tmp_path / "results", quiet=True)
    assert alone["val_loss"] == summaries[2.0]["val_loss"]  # (another id: the sweep's points carry tags.sweep)
    again = run_sweep(spec, log=lambda *a: None)
    assert again.ran == [] and len(again.skipped) == 3
    spec["grid"] = {"train.epochs": [4.0]}  # a later, longer point of the setting starts from the kept checkpoints
    later = run_sweep(spec, log=lambda *a: None)
    longest = json.loads((later.points[0].run_dir / rundir.SUMMARY).read_text())["branched_from"]
    assert longest["step"] == max(branch.decay_start(p.config, branch.horizon_steps(p.config)) for p in report.points)


def test_a_run_keeps_checkpoints_for_the_shorter_epochs_a_later_sweep_may_train(tiny_store, tmp_path):
    """A search trains its start first and the shorter epoch count in a later batch: with `branch_epochs` the
    start keeps a checkpoint at that count's decay start, so the later run trains only its decay."""
    spec = {"name": "s", "data": str(tiny_store.path), "set": {**WSD, "model.depth": 2, "model.head_dim": 16,
                                                               "model.seq_len": 64, "train.batch_size": 8,
                                                               "train.threads": 1},
            "points": [{"train.epochs": 3.0}], "out": str(tmp_path / "runs"), "results": str(tmp_path / "results"),
            "branch_epochs": [1.0, 3.0, 6.0]}
    first = run_sweep(spec, log=lambda *a: None)
    kept = json.loads((first.points[0].run_dir / rundir.CONFIG).read_text())["train"]["branch_steps"]
    spec["points"] = [{"train.epochs": 1.0}]
    later = run_sweep(spec, log=lambda *a: None)
    short = later.points[0]
    start = branch.decay_start(short.config, branch.horizon_steps(short.config))
    assert start in kept and len(kept) == 2  # 1 epoch's decay start and its own; none for 3 or 6
    assert json.loads((short.run_dir / rundir.SUMMARY).read_text())["branched_from"]["step"] == start
    spec["branch_epochs"], spec["points"], spec["out"] = [], [{"train.epochs": 3.0}], str(tmp_path / "plain")
    spec["results"] = str(tmp_path / "plain-results")
    plain = run_sweep(spec, log=lambda *a: None)  # without: only its own decay start
    assert len(json.loads((plain.points[0].run_dir / rundir.CONFIG).read_text())["train"]["branch_steps"]) == 1


def test_a_run_too_short_to_decay_never_starts_at_its_last_step(tiny_store, tmp_path):
    """A horizon of so few steps that its warmdown rounds to none: a kept checkpoint at its last step would leave
    it nothing to train (and no evaluation); it starts before its end instead."""
    spec = {"name": "s", "data": str(tiny_store.path), "set": {**WSD, "model.depth": 1, "train.threads": 1},
            "points": [{"train.epochs": 3.0}], "out": str(tmp_path / "runs"), "results": str(tmp_path / "results"),
            "branch_epochs": [1.0]}
    run_sweep(spec, log=lambda *a: None)
    spec["points"] = [{"train.epochs": 1.0}]
    later = run_sweep(spec, log=lambda *a: None)
    short = later.points[0]
    steps = branch.horizon_steps(short.config)
    assert branch.decay_start(short.config, steps) == steps  # no decay step at this horizon
    assert later.complete and later.ran
    summary = json.loads((short.run_dir / rundir.SUMMARY).read_text())
    assert summary["steps"] == steps and summary.get("branched_from", {"step": 0})["step"] < steps
