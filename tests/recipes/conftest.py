"""A tiny token store and a tiny-model recipe context for the recipe tests."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

TINY = {"model.aspect_ratio": 32, "model.head_dim": 16, "model.seq_len": 32, "train.batch_size": 4,
        "train.eval_tokens": 256, "train.threads": 1, "train.log_every": 1000}


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """~40 kB of stdlib source as a token store (vocab 300, 6,000 train tokens)."""
    from scarce.data.store import prepare

    root = tmp_path_factory.mktemp("corpus")
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]
    lines = [json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")[:1200]}) for p in files]
    (root / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return prepare(f"files:{root}", tmp_path_factory.mktemp("store") / "s", vocab_size=300, train_tokens=6000,
                   select_tokens=600, val_tokens=600, log=lambda *a: None)


@pytest.fixture
def make_context(tiny_store, tmp_path):
    from scarce.recipes.common import Context

    def make(**kwargs):
        kwargs.setdefault("sizes", [1])
        kwargs.setdefault("overrides", dict(TINY))
        return Context(data=str(tiny_store.path), out=str(tmp_path / "out"), results=str(tmp_path / "results"),
                       log=lambda *a: None, **kwargs)

    return make
