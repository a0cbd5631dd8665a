"""Sharded training (train.parallel=fsdp) on CPU (gloo): two ranks of batch B reach the weights one process of
batch 2B reaches (up to float rounding), with AdamW and with Muon (Newton-Schulz, or MuonEq-R's row normalisation
and Polar Express, on gathered matrices); a sharded
run resumes from its checkpoint to the same weights, and its checkpoints have a one-process run's layout."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

COMMON = ["--set", "model.depth=2", "--set", "model.head_dim=16", "--set", "model.seq_len=32",
          "--set", "train.eval_tokens=256", "--set", "train.eval_every=4", "--tokens", str(12 * 8 * 32),
          "--threads", "1", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _train(store, out, results, *extra, ranks=1, resume=False):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] \
        if ranks > 1 else [sys.executable]
    args = ["train", "--resume", str(out)] if resume else \
        ["train", "--data", str(store.path), "--results", str(results), "--out", str(out), *COMMON, *extra]
    done = subprocess.run([*launcher, "-m", "scarce.cli", *args], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _close(a_dir, b_dir, name="best.safetensors"):
    a, b = load_file(str(a_dir / "checkpoints" / name)), load_file(str(b_dir / "checkpoints" / name))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=5e-5)  # float rounding of 12 steps (reduce order)


MUON_EQ_R = "muon,optim.muon_orth=polar-express,optim.muon_row_norm=true,optim.muon_momentum_warmup=5"


@pytest.mark.parametrize("optimizer", ["adamw", "muon", MUON_EQ_R], ids=["adamw", "muon", "muon-eq-r"])
def test_two_sharded_ranks_match_one_process_of_twice_the_batch(stdlib_store, tmp_path, optimizer):
    """Muon-eq-r: Polar Express, rows normalised and the momentum warmed up on the gathered matrices."""
    name, *more = optimizer.split(",")
    opt = ["--set", f"optim.optimizer={name}", *(a for m in more for a in ("--set", m))]
    _train(stdlib_store, tmp_path / "fsdp", tmp_path / "r", *opt, "--set", "train.batch_size=4",
           "--set", "train.parallel=fsdp", ranks=2)
    _train(stdlib_store, tmp_path / "one", tmp_path / "r", *opt, "--set", "train.batch_size=8")
    _close(tmp_path / "fsdp", tmp_path / "one")
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("fsdp", "one")]
    assert summaries[0]["run_id"] != "" and abs(summaries[0]["val_loss"] - summaries[1]["val_loss"]) < 1e-4
    # the sharded run's last checkpoint has the one-process layout: the same tensors, names and shapes
    last = lambda d: sorted((tmp_path / d / "checkpoints").glob("step_*"))[-1]
    for name in ("model.safetensors", "optim.safetensors"):
        a, b = load_file(str(last("fsdp") / name)), load_file(str(last("one") / name))
        assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}


def test_a_sharded_run_resumes_to_the_same_weights(stdlib_store, tmp_path):
    _train(stdlib_store, tmp_path / "full", tmp_path / "r", "--set", "train.batch_size=4",
           "--set", "train.parallel=fsdp", ranks=2)
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "full", cut)
    steps = sorted((cut / "checkpoints").glob("step_*"))
    assert len(steps) == 2
    shutil.rmtree(steps[-1])  # as if killed after the checkpoint before the last
    (cut / "summary.json").unlink()
    (cut / "checkpoints" / "best.safetensors").unlink(missing_ok=False)
    shutil.copy2(tmp_path / "full" / "checkpoints" / "best.safetensors", cut / "checkpoints" / "best.safetensors")
    _train(stdlib_store, cut, None, ranks=2, resume=True)
    _close(tmp_path / "full", cut, sorted((tmp_path / "full" / "checkpoints").glob("step_*"))[-1].name
           + "/model.safetensors")


def _cut_before_last(full, cut):
    """A copy of run `full` as if killed after its checkpoint before the last."""
    shutil.copytree(full, cut)
    shutil.rmtree(sorted((cut / "checkpoints").glob("step_*"))[-1])
    (cut / "summary.json").unlink()


def _last_weights(d):
    return sorted((d / "checkpoints").glob("step_*"))[-1].name + "/model.safetensors"


def test_a_sharded_run_resumes_under_another_world_size(stdlib_store, tmp_path):
    """Saved by 2 sharded ranks of batch 4, resumed by 1 rank: 2 micro-batches of 4 per step, the same windows,
    the same weights at the end (up to the reduce order)."""
    _train(stdlib_store, tmp_path / "full", tmp_path / "r", "--set", "train.batch_size=4",
           "--set", "train.parallel=fsdp", ranks=2)
    _cut_before_last(tmp_path / "full", tmp_path / "cut")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    done = subprocess.run([*launcher, "-m", "scarce.cli", "train", "--resume", str(tmp_path / "cut")], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming under world size 1: 2 micro-batch(es) of 4" in done.stderr
    _close(tmp_path / "full", tmp_path / "cut", _last_weights(tmp_path / "full"))
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("full", "cut")]
    assert summaries[0]["steps"] == summaries[1]["steps"] and summaries[0]["tokens_seen"] == summaries[1]["tokens_seen"]


def test_a_one_process_run_resumes_under_two_ranks(stdlib_store, tmp_path):
    """Saved by one process of 2 micro-batches of 4, resumed by 2 DDP ranks of 1 micro-batch each."""
    _train(stdlib_store, tmp_path / "full", tmp_path / "r", "--set", "train.batch_size=4",
           "--set", "train.grad_accum=2")
    _cut_before_last(tmp_path / "full", tmp_path / "cut")
    _train(stdlib_store, tmp_path / "cut", None, ranks=2, resume=True)
    _close(tmp_path / "full", tmp_path / "cut", _last_weights(tmp_path / "full"))


def test_a_world_size_that_does_not_divide_the_batch_is_refused(stdlib_store, tmp_path):
    _train(stdlib_store, tmp_path / "full", tmp_path / "r", "--set", "train.batch_size=3")
    _cut_before_last(tmp_path / "full", tmp_path / "cut")
    before = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*launcher, "-m", "scarce.cli", "train", "--resume", str(tmp_path / "cut")], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "under world size 2: the run takes 3 sequences per step" in done.stderr
    ours = [line for line in done.stderr.splitlines() if "under world size 2" in line]
    assert ours and all(line.startswith("error: cannot resume") for line in ours)  # one line per rank (torchrun
    # then reports the failed ranks in its own words)
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == before
