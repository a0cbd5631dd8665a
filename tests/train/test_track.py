"""Experiment trackers (`scarce.track`): TensorBoard event files and W&B offline runs hold the logged scalars,
a failing tracker never stops a run, and tracking changes neither what a run computes nor its id."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from scarce import track
from scarce.cli.main import main
from scarce.rundir import load_weights, read_config
from scarce.runs.launch import train

STEPS = {"train.tokens": 5120, "train.log_every": 2, "train.eval_every": 5, "optim.grad_clip": 1.0}


def _records(run_dir, kind):
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["type"] == kind]


def _same_series(tracked, logged):
    """(step, value) pairs the tracker holds equal metrics.jsonl's (TensorBoard keeps float32)."""
    assert len(logged) >= 2 and [s for s, _ in tracked] == [s for s, _ in logged]
    assert [v for _, v in tracked] == pytest.approx([v for _, v in logged], rel=1e-6)


def _final(run_dir):
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    return load_weights(run_dir / "checkpoints" / latest["dir"] / "model.safetensors")


@pytest.fixture
def untracked(tiny_store, tiny_config, tmp_path):
    summary = train(tiny_config(tiny_store, **STEPS), tmp_path / "untracked", str(tmp_path / "res0"), quiet=True)
    return tmp_path / "untracked", summary


def test_tensorboard_events_hold_the_logged_scalars(tiny_store, tiny_config, untracked, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    summary = train(tiny_config(tiny_store, **STEPS, **{"train.tracker": "tensorboard"}), run, str(tmp_path / "res"),
                    quiet=True)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/tok_s", "train/mfu", "train/grad_norm", "eval/val_loss",
            "eval/select_loss", "summary/val_loss"} <= tags
    train_recs, eval_recs = _records(run, "train"), _records(run, "eval")
    _same_series([(e.step, e.value) for e in events.Scalars("train/loss")], [(r["step"], r["loss"]) for r in train_recs])
    _same_series([(e.step, e.value) for e in events.Scalars("eval/val_loss")],
                 [(r["step"], r["val_loss"]) for r in eval_recs])
    assert "config/text_summary" in events.Tags()["tensors"]  # the resolved config as text
    # Tracking is an execution detail: the same run id, the same numbers and weights as the untracked run.
    base, base_summary = untracked
    assert read_config(run).train.tracker == "tensorboard"
    assert summary["run_id"] == base_summary["run_id"] and summary["val_loss"] == base_summary["val_loss"]
    assert all(torch.equal(a, b) for a, b in zip(_final(run).values(), _final(base).values()))


def _wandb_records(folder):
    """The records of a W&B run file (a LevelDB-style log of 32 KiB blocks, each record a protobuf)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    data, pos, buf, out = path.read_bytes(), 7, b"", []  # 7 bytes of file header
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a record header is padding
            pos += 32768 - pos % 32768
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if n == 0 and kind == 0:
            break
        buf, pos = buf + data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def test_wandb_offline_run_holds_the_logged_scalars(tiny_store, tiny_config, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_config(tiny_store, **STEPS, **{"train.tracker": "wandb"})
    cfg.tags = {"sweep": "lr-probe"}
    summary = train(cfg, tmp_path / "run", str(tmp_path / "res"), quiet=True)
    records = _wandb_records(tmp_path / "run")
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    _same_series([(h["_step"], h["train/loss"]) for h in history if "train/loss" in h],
                 [(r["step"], r["loss"]) for r in _records(tmp_path / "run", "train")])
    _same_series([(h["_step"], h["eval/val_loss"]) for h in history if "eval/val_loss" in h],
                 [(r["step"], r["val_loss"]) for r in _records(tmp_path / "run", "eval")])
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == summary["run_id"] and run.run_group == "lr-probe"
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["optim"]["grad_clip"] == 1.0 and config["model"]["depth"] == 2
    finals = {u.key or "/".join(u.nested_key): json.loads(u.value_json)
              for r in records if r.WhichOneof("record_type") == "summary" for u in r.summary.update}
    assert finals["val_loss"] == pytest.approx(summary["val_loss"])


def _broken_scalars(self, step, values):
    raise OSError("No space left on device")


def _cannot_start(self, *args):
    raise ImportError("No module named 'wandb'")


@pytest.mark.parametrize("tracker, cls, method, broken, warning", [
    ("tensorboard", "TensorBoard", "scalars", _broken_scalars, "OSError: No space left on device"),  # at every call
    ("wandb", "WandB", "__init__", _cannot_start, "ImportError: No module named 'wandb'"),  # a missing package
])
def test_a_failing_tracker_warns_once_and_the_run_goes_on(tiny_store, tiny_config, untracked, tmp_path, monkeypatch,
                                                          capsys, tracker, cls, method, broken, warning):
    monkeypatch.setattr(getattr(track, cls), method, broken)
    summary = train(tiny_config(tiny_store, **STEPS, **{"train.tracker": tracker}), tmp_path / "run",
                    str(tmp_path / "res"), quiet=True)
    err = capsys.readouterr().err
    assert err.count(f"warning: tracker {tracker} failed ({warning})") == 1
    assert summary["val_loss"] == untracked[1]["val_loss"]
    if method == "__init__":
        assert not (tmp_path / "run" / tracker).exists()


def test_tracker_from_the_environment_and_a_bad_one(tiny_store, tiny_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCARCE_TRACKER", "tensorboard")
    train(tiny_config(tiny_store, **STEPS), tmp_path / "env", str(tmp_path / "res"), quiet=True)
    assert list((tmp_path / "env" / "tensorboard").glob("events.out.tfevents.*"))
    monkeypatch.setenv("SCARCE_TRACKER", "mlflow")
    argv = ["train", "--data", str(tiny_store.path), "--out", str(tmp_path / "bad"), "--results", str(tmp_path / "res"),
            "--set", "model.depth=1", "--tokens", "512", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "error: $SCARCE_TRACKER must be one of none, tensorboard, wandb, got 'mlflow'\n"
    assert not (tmp_path / "bad").exists()


def test_sweep_tracker_reaches_every_point(tiny_store, tmp_path, monkeypatch):
    monkeypatch.setenv("SCARCE_TRACKER", "none")  # restored after the test: --tracker sets it for the workers
    spec = tmp_path / "s.py"
    spec.write_text("def make():\n    return " + repr({
        "name": "tracked", "data": str(tiny_store.path), "out": str(tmp_path / "sweep"),
        "results": str(tmp_path / "res"),
        "set": {"model.depth": 1, "model.head_dim": 16, "model.seq_len": 32, "train.batch_size": 4,
                "train.tokens": 512, "train.log_every": 2},
        "grid": {"optim.lr": [1e-3, 3e-3]}}) + "\n")
    assert main(["sweep", f"{spec}:make", "--workers", "1", "--threads", "1", "--tracker", "tensorboard"]) == 0
    runs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/config.json"))
    assert len(runs) == 2 and all(list((r / "tensorboard").glob("events.out.tfevents.*")) for r in runs)
