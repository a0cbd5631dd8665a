"""Fixtures for ensemble tests: a small token store and a few tiny trained members (1 torch thread)."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

TINY = ["model.depth=1", "model.aspect_ratio=32", "model.head_dim=16", "model.seq_len=32",
        "train.batch_size=8", "train.tokens=5120", "train.threads=1", "train.log_every=1000", "train.eval_every=10"]


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    from scarce.data.prepare import prepare

    root = tmp_path_factory.mktemp("ens-data")
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]
    texts = [p.read_text(encoding="utf-8", errors="replace")[:1500] for p in files]
    (root / "docs.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
    return prepare(f"files:{root}", root / "store", vocab_size=300, train_tokens=12_000, select_tokens=1_500,
                   val_tokens=1_500, log=lambda *a: None)


def tiny_config(store, *overrides: str):
    from scarce.config import apply_overrides, get_preset

    cfg = apply_overrides(get_preset("tiny"), TINY + list(overrides))
    cfg.data = str(store.path)
    return cfg


@pytest.fixture(scope="session")
def members(store, tmp_path_factory):
    """Three tiny members differing by seed."""
    from scarce.runs.launch import train

    root = tmp_path_factory.mktemp("members")
    dirs = []
    for k in range(3):
        train(tiny_config(store, f"train.seed={k}"), root / f"m{k}", results=str(root / "results"), quiet=True)
        dirs.append(root / f"m{k}")
    return dirs


@pytest.fixture(scope="session")
def make_config(store):
    """make_config(*overrides) -> a tiny member config on the test store."""
    return lambda *overrides: tiny_config(store, *overrides)
