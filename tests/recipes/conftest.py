"""A tiny token store and a tiny-model recipe context for the recipe tests."""

from __future__ import annotations

import pytest

TINY = {"model.aspect_ratio": 32, "model.head_dim": 16, "model.seq_len": 32, "train.batch_size": 4,
        "train.eval_tokens": 256, "train.threads": 1, "train.log_every": 1000}


@pytest.fixture
def make_context(tiny_store, tmp_path):
    from scarce.recipes.common import Context
    from scarce.runs.executors import Execution

    def make(**kwargs):
        kwargs.setdefault("sizes", [1])
        kwargs.setdefault("overrides", dict(TINY))
        return Context(data=str(tiny_store.path), out=str(tmp_path / "out"),
                       execution=Execution(results=str(tmp_path / "results")), log=lambda *a: None, **kwargs)

    return make
