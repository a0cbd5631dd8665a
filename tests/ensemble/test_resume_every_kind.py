"""Every kind of run, killed and continued with `scarce train --resume`, ends bit-identical to the same run
uninterrupted: the run is its config, so resume rebuilds the objective, the loader and the init from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from scarce.cli.main import main
from scarce.config import InitConfig, MixConfig
from scarce.recipes.ensemble import distill_from
from scarce.rundir import load_weights, read_config
from scarce.runs.launch import train
from scarce.runs.store import RunStore
from scarce.synth import SynthSpec, synthesize

EVERY5 = ("train.eval_every=5",)


def _plain(make_config, members, tmp_path):
    return make_config(*EVERY5, "model.dropout=0.1")


def _chain_member(make_config, members, tmp_path):
    return distill_from(make_config(*EVERY5, "train.seed=1"), [members[0]], 0.5, 2.0)


def _ensemble_student(make_config, members, tmp_path):
    return distill_from(make_config(*EVERY5, "train.seed=3"), members, 0.7, 1.0, "prob")


def _seq_student(make_config, members, tmp_path):
    syn = synthesize([members[0], members[1]], tmp_path / "synthetic", SynthSpec(4000, streams=16))
    cfg = make_config(*EVERY5)
    cfg.mix = MixConfig(str(syn.path), 0.9)
    return cfg


def _data_mix(make_config, members, tmp_path):
    cfg = make_config(*EVERY5)
    cfg.mix = MixConfig(read_config(members[2]).data, 0.5)  # the same store, drawn as a second stream
    return cfg


def _init_seed_and_snapshots(make_config, members, tmp_path):
    cfg = make_config(*EVERY5, "train.snapshot_every=4")
    cfg.init = InitConfig(seed=11)
    return cfg


def _init_source(make_config, members, tmp_path):
    cfg = make_config(*EVERY5)
    cfg.init = InitConfig(source=str(members[1]))
    return cfg


def _looping(make_config, members, tmp_path):
    return make_config(*EVERY5, "model.depth=3", "model.loop_layers=0:2", "model.loop_from=0.3")


def _ema(make_config, members, tmp_path):
    return make_config(*EVERY5, "optim.ema_decay=0.9", "optim.ema_start=0.1")


def _last_k(make_config, members, tmp_path):
    return make_config(*EVERY5, "optim.avg_last=3", "optim.avg_every=2")


KINDS = [_plain, _chain_member, _ensemble_student, _seq_student, _data_mix, _init_seed_and_snapshots,
         _init_source, _looping, _ema, _last_k]


def _final(run_dir):
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    return load_weights(run_dir / "checkpoints" / latest["dir"] / "model.safetensors")


def _evals(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if json.loads(x)["type"] == "eval"]


@pytest.mark.parametrize("make", KINDS, ids=[k.__name__.strip("_") for k in KINDS])
def test_resume_with_the_cli_is_bit_identical(make, make_config, members, tmp_path):
    results = str(tmp_path / "r")
    cfg = make(make_config, members, tmp_path)
    full = train(cfg, tmp_path / "full", results, quiet=True)
    assert train(cfg, tmp_path / "cut", results, quiet=True, stop_at_step=7) is None  # killed after step 7
    assert main(["train", "--resume", str(tmp_path / "cut"), "--results", results, "--quiet"]) == 0
    a, b = _final(tmp_path / "full"), _final(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _evals(tmp_path / "full") == _evals(tmp_path / "cut")
    resumed = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert resumed["val_loss"] == full["val_loss"] and resumed["run_id"] == full["run_id"]
    assert RunStore(results).get(full["run_id"])["status"] == "done"
    snapshots = sorted(p.name for p in (tmp_path / "full" / "checkpoints" / "snapshots").glob("*"))
    assert snapshots == sorted(p.name for p in (tmp_path / "cut" / "checkpoints" / "snapshots").glob("*"))


def test_a_distillation_member_killed_by_sigkill_resumes_as_itself(make_config, members, tmp_path):
    """The bug this design fixes: a chain member resumed with `scarce train --resume` used to continue as
    plain cross-entropy. Killed for real here, in a subprocess, after its first checkpoint."""
    results, teacher = str(tmp_path / "r"), str(members[0])
    cfg = distill_from(make_config("train.eval_every=2", "train.tokens=10240"), [teacher], 0.5, 2.0)
    (tmp_path / "cfg.json").write_text(json.dumps({k: cfg.to_dict()[k] for k in ("model", "optim", "train",
                                                                                    "objective")}))
    argv = ["train", "--data", cfg.data, "--config", str(tmp_path / "cfg.json"), "--results", results, "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scarce.cli", *argv, "--out", str(tmp_path / "cut")], env=env,
                            stderr=subprocess.PIPE)
    latest, deadline = tmp_path / "cut" / "checkpoints" / "latest.json", time.time() + 120
    while time.time() < deadline and proc.poll() is None and not latest.exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest.exists(), proc.stderr.read().decode()
    assert not (tmp_path / "cut" / "summary.json").exists()  # killed before the end
    assert main(["train", "--resume", str(tmp_path / "cut"), "--results", results, "--quiet"]) == 0
    assert main(argv + ["--out", str(tmp_path / "full")]) == 0
    assert read_config(tmp_path / "cut").objective.teachers == [teacher]
    a, b = _final(tmp_path / "full"), _final(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
