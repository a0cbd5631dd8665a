"""Golden loss curve: a refactor must keep the training loss of a fixed-seed tiny run unchanged.

The corpus is generated here from a seeded `random.Random` (the same text on every platform and
Python version), so the curve depends only on scarce and torch. When a change is meant to alter the
curve (a new default, another init), regenerate the file and say so in the commit:

    SCARCE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/train/test_golden.py
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from scarce.data.prepare import prepare
from scarce.runs.launch import train

GOLDEN = Path(__file__).parent / "golden" / "tiny_loss_curve.json"
WORDS = ("data", "token", "model", "loss", "epoch", "weight", "decay", "ensemble", "member", "scale",
         "law", "fit", "budget", "compute", "seed", "layer", "head", "value", "key", "query")


def synthetic_corpus(path: Path, docs: int = 400) -> None:
    rng = random.Random(1234)
    lines = []
    for _ in range(docs):  # each document: a few sentences of a small grammar, so there is something to learn
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))).capitalize() + "."
                     for _ in range(rng.randint(2, 6))]
        lines.append(json.dumps({"text": " ".join(sentences)}))
    path.write_text("\n".join(lines) + "\n")


def test_loss_curve_matches_the_golden_file(tmp_path, tiny_config):
    synthetic_corpus(tmp_path / "corpus.jsonl")
    store = prepare(f"files:{tmp_path / 'corpus.jsonl'}", tmp_path / "store", vocab_size=300, train_tokens=20_000,
                    select_tokens=2_000, val_tokens=2_000, log=lambda *a, **k: None)
    cfg = tiny_config(store, **{"train.tokens": 30 * 8 * 64, "train.log_every": 1, "train.eval_every": 10,
                                "train.eval_tokens": 1024, "model.dropout": 0.1})
    summary = train(cfg, tmp_path / "run", results=tmp_path / "results", quiet=True)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    curve = {"train_loss": [r["loss"] for r in records if r["type"] == "train"],
             "select_loss": [r["select_loss"] for r in records if "select_loss" in r],
             "val_loss": summary["val_loss"]}
    if os.environ.get("SCARCE_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(curve, indent=1) + "\n")
        pytest.skip("golden file regenerated")
    golden = json.loads(GOLDEN.read_text())
    assert len(curve["train_loss"]) == len(golden["train_loss"]) == 30
    # fp32 on CPU: bit-identical on one machine; the tolerance admits another CPU's summation order only.
    assert curve["train_loss"] == pytest.approx(golden["train_loss"], rel=1e-4)
    assert curve["select_loss"] == pytest.approx(golden["select_loss"], rel=1e-4)
    assert curve["val_loss"] == pytest.approx(golden["val_loss"], rel=1e-4)
