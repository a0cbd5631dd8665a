"""`scarce ensemble` and `scarce sample` as the issue's CLI contract states them."""

from __future__ import annotations

import json

import pytest

from scarce.cli.main import main
from scarce.runs.store import RunStore

TINY = ["--set", "model.depth=1", "--set", "model.aspect_ratio=32", "--set", "model.head_dim=16",
        "--set", "model.seq_len=32", "--set", "train.batch_size=8", "--set", "train.log_every=1000",
        "--tokens", "2560", "--threads", "1", "--quiet"]


def _ensemble(store, out, results, *extra):
    argv = ["ensemble", "--data", str(store.path), "--preset", "tiny", "--out", str(out), "--results", str(results)]
    return main(argv + TINY + list(extra))


def test_ensemble_writes_members_and_prefix_curve(store, tmp_path):
    assert _ensemble(store, tmp_path / "ens", tmp_path / "res", "--members", "3") == 0
    report = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert len(report["members"]) == 3 and len(report["prefix_val_loss"]) == 3 and len(report["prefix_val_bpb"]) == 3
    assert report["prefix_val_loss"][0] == pytest.approx(report["members"][0]["val_loss"])
    assert report["prefix_val_loss"][2] < min(m["val_loss"] for m in report["members"])
    rows = RunStore(tmp_path / "res").list(group=report["group"], status="done")
    assert sorted(r.config.train.seed for r in rows) == [0, 1, 2]
    # A rerun reuses the finished members and gives the same numbers.
    assert _ensemble(store, tmp_path / "ens", tmp_path / "res", "--members", "3") == 0
    assert json.loads((tmp_path / "ens" / "ensemble.json").read_text()) == report


def test_parallel_workers_match_sequential(store, tmp_path):
    _ensemble(store, tmp_path / "seq", tmp_path / "res", "--members", "2", "--combine", "prob", "--workers", "1")
    _ensemble(store, tmp_path / "par", tmp_path / "res2", "--members", "2", "--combine", "prob", "--workers", "2")
    seq = json.loads((tmp_path / "seq" / "ensemble.json").read_text())
    par = json.loads((tmp_path / "par" / "ensemble.json").read_text())
    assert par["prefix_val_loss"] == pytest.approx(seq["prefix_val_loss"], abs=1e-6)


def test_chain_distill_and_seed_mode(store, tmp_path):
    assert _ensemble(store, tmp_path / "chain", tmp_path / "res", "--members", "2", "--chain-distill",
                     "--seed-mode", "init") == 0
    report = json.loads((tmp_path / "chain" / "ensemble.json").read_text())
    assert report["chain_distill"] and len(report["prefix_val_loss"]) == 2
    assert (report["alpha"], report["temperature"]) == (0.5, 1.0)  # NanoGPT Slowrun's chain by default
    second = json.loads((tmp_path / "chain" / "members" / "m01" / "config.json").read_text())
    assert second["objective"]["kind"] == "distill"
    assert (second["objective"]["alpha"], second["objective"]["temperature"]) == (0.5, 1.0)
    assert second["objective"]["teachers"] == [str((tmp_path / "chain" / "members" / "m00").resolve())]
    assert second["train"]["seed"] == 0 and second["init"]["seed"] == 1  # same data order, other init


def test_evaluate_existing_runs(members, tmp_path, capsys):
    assert main(["ensemble", "--out", str(tmp_path / "e"), "--runs", *map(str, members), "--quiet"]) == 0
    assert len(json.loads((tmp_path / "e" / "ensemble.json").read_text())["prefix_val_loss"]) == 3


@pytest.mark.parametrize("argv, message", [
    (["ensemble", "--out", "x", "--members", "2"], "--data"),
    (["ensemble", "--out", "x", "--data", "DATA"], "--members"),
    (["ensemble", "--out", "x", "--data", "DATA", "--members", "2", "--alpha", "2"], "--alpha"),
    (["ensemble", "--out", "x", "--data", "DATA", "--members", "0"], "--members"),
    (["ensemble", "--out", "x", "--snapshots", "nowhere"], "snapshots"),
    (["sample", "--tokens", "5"], "--run"),
    (["sample", "--run", "nowhere", "--tokens", "5"], "not a run directory"),
])
def test_user_errors_are_one_line(store, argv, message, capsys):
    argv = [str(store.path) if a == "DATA" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_sample_is_seeded(members, capsys):
    argv = ["sample", "--run", str(members[0]), "--tokens", "20", "--temperature", "0.8", "--top-k", "20"]
    assert main(argv + ["--seed", "1"]) == 0
    a = capsys.readouterr().out
    assert main(argv + ["--seed", "1"]) == 0
    assert capsys.readouterr().out == a and a.strip()
    assert main(argv + ["--seed", "2", "--run", str(members[1])]) == 0


def test_sample_greedy_equals_top1():
    import torch

    from scarce.sample import Sampling, pick

    lp = torch.log_softmax(torch.randn(4, 50), -1)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(pick(lp, Sampling(0.0), g), lp.argmax(-1))
    assert torch.equal(pick(lp, Sampling(1.0, top_k=1), g), lp.argmax(-1))
    assert torch.equal(pick(lp, Sampling(1.0, top_p=1e-6), g), lp.argmax(-1))


def test_snapshot_ensemble(store, tmp_path):
    assert _ensemble(store, tmp_path / "snap", tmp_path / "res", "--snapshot-every", "4") == 0
    report = json.loads((tmp_path / "snap" / "ensemble.json").read_text())
    assert len(report["prefix_val_loss"]) == 3  # 10 steps: snapshots at steps 4, 8 and the last
    assert {m["run_dir"] for m in report["members"]} == {str(tmp_path / "snap" / "run")}
    again = tmp_path / "again"
    assert main(["ensemble", "--out", str(again), "--snapshots", str(tmp_path / "snap" / "run"), "--quiet"]) == 0
    assert json.loads((again / "ensemble.json").read_text())["prefix_val_loss"] == report["prefix_val_loss"]


def test_student_distilled_from_the_ensemble(store, tmp_path):
    assert _ensemble(store, tmp_path / "e", tmp_path / "res", "--members", "2", "--student", "--alpha", "0.7") == 0
    report = json.loads((tmp_path / "e" / "ensemble.json").read_text())
    student = json.loads((tmp_path / "e" / "student" / "config.json").read_text())
    assert len(student["objective"]["teachers"]) == 2 and student["train"]["seed"] == 2
    assert student["objective"]["temperature"] == 2.0  # a student keeps the objective's default (its run id too)
    assert report["student"]["val_loss"] > 0 and report["student"]["alpha"] == 0.7


def test_rerun_with_other_settings_is_refused(store, tmp_path, capsys):
    assert _ensemble(store, tmp_path / "e", tmp_path / "res", "--members", "1") == 0
    assert _ensemble(store, tmp_path / "e", tmp_path / "res", "--members", "2") == 0  # extends the ensemble
    assert _ensemble(store, tmp_path / "e", tmp_path / "res", "--members", "2", "--seed-mode", "init") == 2
    assert "holds a run of another config" in capsys.readouterr().err
