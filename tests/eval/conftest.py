"""Fixtures for downstream evaluation: runs made without training (random init, saved as a run's
select-chosen weights), so the tests take seconds; the scores only have to be computed right."""

from __future__ import annotations

import json

import pytest
import torch

from scarce.config import apply_overrides, get_preset
from scarce.model.gpt import GPT
from scarce.rundir import best_weights, save_weights, write_config

TINY = {"model.depth": 2, "model.head_dim": 16, "model.seq_len": 64, "train.threads": 1}


def make_run(store, run_dir, seed: int, **overrides):
    """A run directory holding a config and random-init weights (seed), as if trained."""
    items = {**TINY, "model.vocab_size": store.vocab_size, **overrides}
    cfg = apply_overrides(get_preset("tiny"), [f"{k}={json.dumps(v)}" for k, v in items.items()])
    cfg.data = str(store.path)
    torch.manual_seed(seed)
    write_config(run_dir, cfg)
    save_weights(best_weights(run_dir), GPT(cfg.model).state_dict())
    return run_dir


@pytest.fixture(scope="session")
def eval_runs(tiny_store, tmp_path_factory):
    """Two runs (seq_len 64) differing by their init seed."""
    root = tmp_path_factory.mktemp("eval-runs")
    return [make_run(tiny_store, root / f"r{k}", seed=k) for k in range(2)]
