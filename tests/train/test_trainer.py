import json

import numpy as np
import torch
from safetensors.torch import load_file

from scarce.runs.launch import resume, train


def unigram_entropy(train_tokens: np.ndarray, val_tokens: np.ndarray, vocab: int) -> float:
    """Cross-entropy (nats/token) of val under the add-one-smoothed unigram distribution of train."""
    counts = np.bincount(train_tokens, minlength=vocab) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[val_tokens].mean())


def test_tiny_model_learns_well_below_unigram_entropy(stdlib_store, tmp_path, tiny_config):
    cfg = tiny_config(stdlib_store, **{"train.tokens": 300_000, "train.batch_size": 16})
    summary = train(cfg, tmp_path / "run", results=tmp_path / "results", quiet=True)
    h1 = unigram_entropy(stdlib_store.split("train"), stdlib_store.split("val"), stdlib_store.vocab_size)
    assert summary["val_loss"] < h1 - 1.0, (summary["val_loss"], h1)
    assert summary["wall_seconds"] < 60
    for key in ("val_loss", "val_bpb", "select_loss", "params", "tokens_seen", "wall_seconds"):
        assert key in summary
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary


def final_weights(run_dir):
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    return load_file(str(run_dir / "checkpoints" / latest["dir"] / "model.safetensors"))


def test_resume_after_a_kill_is_bit_identical(stdlib_store, tmp_path, tiny_config):
    overrides = {"train.tokens": 12 * 8 * 64, "train.eval_every": 5, "train.eval_tokens": 2048, "model.dropout": 0.1}
    full = train(tiny_config(stdlib_store, **overrides), tmp_path / "full", results=tmp_path / "r", quiet=True)
    cut = tmp_path / "cut"
    assert train(tiny_config(stdlib_store, **overrides), cut, results=tmp_path / "r", quiet=True, stop_at_step=8) is None
    assert json.loads((cut / "checkpoints" / "latest.json").read_text())["step"] == 5  # steps 6-8 are lost
    resumed = resume(cut, results=tmp_path / "r", quiet=True)
    a, b = final_weights(tmp_path / "full"), final_weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["val_loss"] == full["val_loss"]
    steps = [json.loads(line)["step"] for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # the records of the lost steps were not kept twice


def test_weight_decay_up_to_six_trains(stdlib_store, tmp_path, tiny_config):
    cfg = tiny_config(stdlib_store, **{"train.tokens": 10 * 8 * 64, "optim.weight_decay": 6.0})
    summary = train(cfg, tmp_path / "run", results=tmp_path / "r", quiet=True)
    assert np.isfinite(summary["val_loss"])
