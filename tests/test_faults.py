"""Fault injection (seeded, CPU, seconds): a SIGKILL at a random moment, damage to each checkpoint file,
NaN at a chosen step. (SIGTERM of a parallel sweep: tests/runs/test_sweep.py; concurrent writers of one
run store: tests/runs/test_store.py; malformed input: tests/test_bad_input.py.)"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from scarce.cli.main import main
from scarce.rundir import load_weights, read_config
from scarce.runs.launch import resume, train
from scarce.runs.store import RunRow, RunStore
from scarce.train.trainer import Trainer

TINY = ["--set", "model.depth=1", "--set", "model.head_dim=16", "--set", "model.seq_len=32",
        "--set", "train.batch_size=4", "--set", "train.eval_tokens=512", "--set", "train.eval_every=3",
        "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def full(stdlib_store, tmp_path_factory):
    """An uninterrupted run (24 steps, a checkpoint every 3) and the argv that makes it."""
    root = tmp_path_factory.mktemp("faults")
    argv = ["train", "--data", str(stdlib_store.path), "--results", str(root / "results"), "--tokens", "3072", *TINY]
    assert main(argv + ["--out", str(root / "full")]) == 0
    return root, argv


def _final(run_dir):
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    return load_weights(run_dir / "checkpoints" / latest["dir"] / "model.safetensors")


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(full):
    root, argv = full
    rng = random.Random(1234)
    run = root / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scarce.cli", *argv, "--out", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoints" / "latest.json").exists() and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.5))  # somewhere after the first checkpoint: mid-step, mid-evaluation or mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert main(["train", "--resume", str(run), "--results", str(root / "results"), "--quiet"]) == 0
    assert _same(_final(run), _final(root / "full"))


@pytest.mark.parametrize("name", ["model.safetensors", "optim.safetensors", "state.json"])
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damage_to_each_file_of_the_newest_checkpoint_falls_back(full, name, damage, capsys):
    root, _ = full
    cfg = read_config(root / "full")
    run = root / f"damaged-{name}-{damage}"
    train(cfg, run, str(root / "results-damage"), quiet=True, stop_at_step=8)  # checkpoints at steps 3 and 6
    newest = sorted((run / "checkpoints").glob("step_*"))[-1] / name
    data = bytearray(newest.read_bytes())
    if damage == "flip":
        data[len(data) * 2 // 3] ^= 0x01
    else:
        data = data[: len(data) // 2]
    newest.write_bytes(bytes(data))
    capsys.readouterr()
    resume(run, str(root / "results-damage"), quiet=True)
    assert "resuming from step_00000003 instead" in capsys.readouterr().err
    assert _same(_final(run), _final(root / "full"))


def _copy_with_damaged_best(source, run, damage: str) -> None:
    """A copy of the finished run whose best.safetensors is cut in half or has one bit flipped near its end."""
    shutil.copytree(source, run)
    best = run / "checkpoints" / "best.safetensors"
    data = bytearray(best.read_bytes())
    data = data[: len(data) // 2] if damage == "truncate" else data[:-7] + bytes([data[-7] ^ 0x80]) + data[-6:]
    best.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_best_weights_are_refused(full, damage, capsys):
    root, _ = full
    run = root / f"best-{damage}"
    _copy_with_damaged_best(root / "full", run, damage)
    assert main(["sample", "--run", str(run), "--tokens", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and ("damaged" in err or "corrupt" in err)


def _records(run_dir) -> list[dict]:
    """metrics.jsonl without what depends on the clock (tokens/s, MFU, seconds)."""
    timing = {"tok_s", "mfu", "wall_seconds", "eval_seconds", "seconds"}
    return [{k: v for k, v in json.loads(line).items() if k not in timing}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_metrics_of_a_resumed_run_equal_an_uninterrupted_runs(full):
    """Killed at step 8 (last checkpoint at 6, train records every 10 steps): the resumed run's step-10 train
    loss averages steps 1-10 as the uninterrupted run's does (the running sum is in the checkpoint)."""
    root, _ = full
    cfg = read_config(root / "full")
    run = root / "metrics-killed"
    train(cfg, run, str(root / "results-metrics"), quiet=True, stop_at_step=8)
    resume(run, str(root / "results-metrics"), quiet=True)
    full_records = _records(root / "full")
    assert [r["step"] for r in full_records if r.get("type") == "train"] == [10, 20, 24]
    assert _records(run) == full_records


def test_a_line_cut_short_in_metrics_is_dropped_on_resume_and_skipped_by_readers(full, capsys):
    """A metrics.jsonl line cut short (the machine went down mid-append) and a non-UTF-8 tail: resume drops
    them with a warning and ends with the uninterrupted run's records; the report's readers skip such lines."""
    from scarce.recipes.crossing import val_curve
    from scarce.runs.export import curve_records

    root, _ = full
    run = root / "metrics-cut"
    train(read_config(root / "full"), run, str(root / "results-cut"), quiet=True, stop_at_step=8)
    evals = [r for r in _records(run) if r["type"] == "eval"]
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'{"type": "eval", "step": 9, "val_lo\n\xff\xfe[')
    tokens, losses = val_curve(run)
    rows = curve_records(RunRow("x", "done", str(run), {}))
    assert list(tokens) == [r["tokens_seen"] for r in evals] and len(losses) == len(evals) >= 2
    assert [r["tokens"] for r in rows] == [r["tokens_seen"] for r in evals if r["step"] > 0]
    assert "skipped 2 damaged line(s)" in capsys.readouterr().err
    resume(run, str(root / "results-cut"), quiet=True)
    assert "dropped 2 damaged line(s)" in capsys.readouterr().err
    assert _records(run) == _records(root / "full")


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_resume_of_a_complete_run_checks_its_best_weights(full, damage, capsys):
    """`train --resume` of a finished run does not say "already complete" over damaged best weights."""
    root, _ = full
    run = root / f"complete-best-{damage}"
    _copy_with_damaged_best(root / "full", run, damage)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--results", str(root / "results-complete"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "best.safetensors" in err
    assert "damaged" in err or "corrupt" in err


def test_nan_at_a_chosen_step_fails_the_run(full, monkeypatch, capsys):
    root, argv = full
    step = Trainer.train_step

    def nan_at_5(self, i):
        loss = step(self, i)
        return loss * float("nan") if i == 4 else loss

    monkeypatch.setattr(Trainer, "train_step", nan_at_5)
    assert main(argv + ["--out", str(root / "nan"), "--results", str(root / "results-nan")]) == 2
    assert "diverged at step 5" in capsys.readouterr().err
    assert not (root / "nan" / "summary.json").exists()
    marker = json.loads((root / "nan" / "diverged.json").read_text())
    assert marker["status"] == "diverged" and marker["step"] == 4 and "step 5" in marker["error"]
    assert main(["train", "--resume", str(root / "nan")]) == 2  # a result: resuming would only diverge again
    assert "holds a diverged run (training diverged at step 5" in capsys.readouterr().err
    rows = RunStore(root / "results-nan").list()
    assert [r.status for r in rows] == ["diverged"] and "diverged" in rows[0].error
    json.dumps([r.as_dict() for r in rows], allow_nan=False)  # nothing non-finite reached the store


def _files(root) -> dict:
    """Every file under `root` with its bytes' sha256."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_run_folder_held_by_another_process_is_refused_untouched(full, capsys):
    """While one process holds a run folder (`rundir.claim`, as `train`, `--resume` and every sweep point do), a
    second `train --out` or `--resume` of it exits 2 with one line naming the folder, and changes nothing there."""
    from scarce.rundir import CLAIM, claim

    root, argv = full
    held, copy = root / "held-new", root / "held-copy"
    shutil.copytree(root / "full", copy)
    for folder, args in ((held, argv + ["--out", str(held), "--set", "train.seed=1"]),
                         (copy, ["train", "--resume", str(copy), "--results", str(root / "results"), "--quiet"])):
        with claim(folder):
            before = _files(folder)
            capsys.readouterr()
            assert main(args) == 2
            err = capsys.readouterr().err
            assert err.startswith("error: ") and err.count("\n") == 1 and str(folder) in err, err
            assert "in use by another process" in err
            assert _files(folder) == before
    assert not held.exists() and not (copy / CLAIM).exists()  # the claim leaves nothing behind


def test_two_train_processes_with_one_out_end_with_one_run(full):
    """Two `scarce train` processes of two seeds given one --out: one trains, the other exits 2 naming the folder
    (in use, or already holding a run when it comes second), and the folder holds the winner's run alone."""
    root, argv = full
    run, results = root / "contested", root / "results-contested"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "scarce.cli", *argv[:-1], "--results", str(results), "--quiet", "--out", str(run)]
    procs = [subprocess.Popen([*cmd, "--set", f"train.seed={seed}"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    outs = [p.communicate(timeout=300)[1] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outs
    winner, loser = codes.index(0), codes.index(2)
    err = outs[loser]
    assert err.startswith("error: ") and err.count("\n") == 1 and str(run) in err, err
    rows = RunStore(results).list()
    summary = json.loads((run / "summary.json").read_text())
    assert [r.status for r in rows] == ["done"] and rows[0].config.train.seed == winner
    assert read_config(run).train.seed == winner and summary["run_id"] == rows[0].id
    steps = [r["step"] for r in _records(run) if r.get("type") == "eval"]
    assert steps == sorted(set(steps))  # one run's records, not two interleaved


def test_two_runs_of_one_config_write_byte_identical_best_weights(full):
    """safetensors writes its metadata map in hash order (another order per map made); the weights files are
    rewritten with it sorted, so two runs of one config, and any two saves of one state, are equal as files."""
    import hashlib

    from scarce.rundir import save_weights

    root, argv = full
    assert main(argv + ["--out", str(root / "again"), "--results", str(root / "results-again")]) == 0
    best = [hashlib.sha256((r / "checkpoints" / "best.safetensors").read_bytes()).hexdigest()
            for r in (root / "full", root / "again")]
    assert best[0] == best[1]
    state = load_weights(root / "full" / "checkpoints" / "best.safetensors")
    saved = set()
    for i in range(8):  # unsorted, two metadata keys come out in one order 8 times in 2^-7 of tries
        save_weights(root / f"save-{i}.safetensors", state)
        saved.add(hashlib.sha256((root / f"save-{i}.safetensors").read_bytes()).hexdigest())
    assert len(saved) == 1


WSD = {"optim.schedule": "wsd", "optim.warmup_frac": 0.0, "optim.warmdown_frac": 0.3, "train.eval_every": 4,
       "model.dropout": 0.1, "optim.weight_decay": 0.8}


@pytest.fixture(scope="module")
def trunk(tiny_store, tmp_path_factory):
    """A 3-epoch trunk keeping branch checkpoints at steps s/2 and s (s: the 1.5-epoch run's decay start), and
    that 1.5-epoch run trained alone."""
    from scarce.runs import branch
    from tests.conftest import make_tiny_config

    root = tmp_path_factory.mktemp("branch-faults")
    short = make_tiny_config(tiny_store, **WSD, **{"train.epochs": 1.5})
    start = branch.decay_start(short, branch.horizon_steps(short))
    long = make_tiny_config(tiny_store, **WSD, **{"train.epochs": 3.0, "train.branch_steps": [start // 2, start]})
    train(long, root / "trunk", root / "res", quiet=True)
    train(short, root / "alone", root / "res", quiet=True)
    return root, short, start


@pytest.mark.parametrize("damaged", ["model.safetensors", "optim.safetensors", "best.safetensors", "both"])
def test_a_damaged_branch_checkpoint_costs_a_warning_and_recomputation(trunk, damaged, capsys):
    """One flipped bit in a trunk's branch checkpoint (weights, optimizer state, or the best weights it hands on):
    the branched run says which file, starts from the trunk's earlier checkpoint (or from step 0 when that is
    damaged too), and ends at the weights of the run trained alone."""
    from scarce import rundir

    root, short, start = trunk
    trunk_copy = root / f"trunk-{damaged}"
    shutil.copytree(root / "trunk", trunk_copy)
    files = [(start, "model.safetensors"), (start // 2, "optim.safetensors")] if damaged == "both" else \
        [(start, damaged)]
    for step, name in files:
        path = rundir.branch_checkpoint(trunk_copy, step) / name
        data = bytearray(path.read_bytes())
        data[-7] ^= 0x01
        path.write_bytes(bytes(data))
    capsys.readouterr()
    run = root / f"branched-{damaged}"
    summary = train(short, run, root / "res", quiet=True, branch_from=str(rundir.branch_checkpoint(trunk_copy, start)))
    err = capsys.readouterr().err
    assert f"step_{start:08d}" in err and files[0][1] in err and "warning: branch checkpoint" in err
    if damaged == "both":
        assert files[1][1] in err and "trains from step 0" in err and "branched_from" not in summary
    else:
        assert f"starting from step_{start // 2:08d} instead" in err
        assert summary["branched_from"]["step"] == start // 2
    assert _same(load_weights(rundir.best_weights(run)), load_weights(rundir.best_weights(root / "alone")))


def test_readers_skip_a_damaged_row_and_leave_a_database_they_did_not_make_as_it_was(full, capsys):
    """`runs --json` and `report` over a run store with a damaged row (its config not JSON, a metric that is text):
    the other rows, and a warning naming the store; `report` of an empty SQLite file it did not make writes no
    schema into it (its bytes unchanged), and a database of another program is refused with its bytes unchanged."""
    import hashlib
    import sqlite3

    root, _ = full
    results = root / "results-damaged-row"
    shutil.copytree(root / "results", results)
    kept = [r.run_dir for r in RunStore(results).list()]
    db = sqlite3.connect(results / "runs.db")
    good = db.execute("SELECT * FROM runs WHERE status='done'").fetchone()
    names = [d[0] for d in db.execute("SELECT * FROM runs").description]
    row = dict(zip(names, good))
    for run_dir, change in (("/x/not-json", {"config": "{cut sh"}), ("/x/text-loss", {"val_loss": "low"})):
        bad = {**row, "run_dir": run_dir, **change}
        db.execute(f"INSERT INTO runs ({', '.join(bad)}) VALUES ({', '.join('?' * len(bad))})", list(bad.values()))
    db.commit()
    db.close()
    capsys.readouterr()
    assert main(["runs", "--json", "--results", str(results)]) == 0
    out, err = capsys.readouterr()
    assert [r["run_dir"] for r in json.loads(out)] == kept and row["run_dir"] in kept
    assert "warning: skipped 2 damaged row(s)" in err and str(results / "runs.db") in err
    assert main(["report", "--out", str(root / "report-damaged-row"), "--results", str(results)]) == 0
    assert "warning: skipped 2 damaged row(s)" in capsys.readouterr().err
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    for name, statements in (("empty", []), ("foreign", ["CREATE TABLE runs (name TEXT)"])):
        path = root / f"results-{name}" / "runs.db"
        path.parent.mkdir()
        db = sqlite3.connect(path)
        for sql in statements:
            db.execute(sql)
        db.commit()
        db.close()
        before = digest(path)
        for argv in (["report", "--out", str(root / f"report-{name}")], ["runs", "--json"]):
            if name == "empty" and argv[0] == "runs":
                continue  # `runs` makes the store it is pointed at; `report` only reads
            assert main([*argv, "--results", str(path.parent)]) == 2
            assert capsys.readouterr().err.count("\n") == 1
            assert digest(path) == before and sorted(os.listdir(path.parent)) == ["runs.db"]


def test_a_full_disk_under_train_out_is_one_line_and_resume_ends_as_uninterrupted(full, monkeypatch, capsys):
    """The checkpoint writer's OSError(ENOSPC) at the second checkpoint: one line saying what to free and how to
    continue, the run stored `interrupted` (a sweep resumes it); after space is freed, `--resume` ends at the
    uninterrupted run's weights."""
    import errno

    from scarce.train import checkpoint

    root, argv = full
    run, results = root / "disk-full", root / "results-disk-full"
    write, calls = checkpoint.save_file, []

    def fills_up(tensors, path, *a, **k):
        calls.append(path)
        if len(calls) == 3:  # model and optimizer of the first checkpoint, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return write(tensors, path, *a, **k)

    monkeypatch.setattr(checkpoint, "save_file", fills_up)
    capsys.readouterr()
    assert main(argv + ["--out", str(run), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the disk is full") and err.count("\n") == 1, err
    assert f"scarce train --resume {run}" in err
    assert [r.status for r in RunStore(results).list()] == ["interrupted"]
    monkeypatch.setattr(checkpoint, "save_file", write)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert _same(_final(run), _final(root / "full"))
    assert [r.status for r in RunStore(results).list()] == ["done"]
