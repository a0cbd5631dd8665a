"""Shared fixtures: a small token store cut from the embedded stdlib corpus, and 1-thread torch.

Tests run torch on one thread: tiny models gain nothing from two, and a two-thread process slows
badly when another process shares the CPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
# Spawned workers unpickle functions from test modules (tests.runs.test_store); they can import them
# only when the repository root is on sys.path, which `pytest` (unlike `python -m pytest`) leaves off.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="scarce-test-cache-")  # the measured MFU peak lands here


@pytest.fixture(scope="session")
def stdlib_store(tmp_path_factory):
    """A stdlib token store: vocab 512, 400k train tokens, 20k select and val tokens."""
    from scarce.data.prepare import prepare

    out = tmp_path_factory.mktemp("stores") / "stdlib"
    return prepare("stdlib", out, vocab_size=512, train_tokens=400_000, select_tokens=20_000,
                   val_tokens=20_000, tokenizer_bytes=2_000_000, log=lambda *a, **k: None)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """~40 kB of stdlib source as a token store (vocab 300, 6,000 train tokens)."""
    import json
    import sysconfig
    from pathlib import Path

    from scarce.data.prepare import prepare

    root = tmp_path_factory.mktemp("corpus")
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]
    lines = [json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")[:1200]}) for p in files]
    (root / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return prepare(f"files:{root}", tmp_path_factory.mktemp("store") / "s", vocab_size=300, train_tokens=6000,
                   select_tokens=600, val_tokens=600, log=lambda *a: None)


@pytest.fixture
def tiny_config():
    """Returns make(store, **overrides) -> RunConfig for a very small model."""
    return make_tiny_config


def make_tiny_config(store, **overrides):
    """A very small model for fast tests (depth 2, width 64, T 64)."""
    from scarce.config import apply_overrides, get_preset

    cfg = get_preset("tiny")
    items = {"model.depth": 2, "model.head_dim": 16, "model.seq_len": 64, "train.batch_size": 8,
             "train.threads": 1, "train.log_every": 1000}
    items.update(overrides)
    cfg = apply_overrides(cfg, [f"{k}={_json(v)}" for k, v in items.items()])
    cfg.data = str(store.path)
    return cfg


def _json(v):
    import json

    return json.dumps(v)
