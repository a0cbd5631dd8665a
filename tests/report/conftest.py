"""A small sweep's run store, shared by the report tests."""

from __future__ import annotations

import pytest

from scarce.cli.main import main


@pytest.fixture(scope="session")
def sweep_store(tiny_store, tmp_path_factory):
    """Four finished runs: two learning rates x two weight decays, one sweep."""
    root = tmp_path_factory.mktemp("report-sweep")
    spec = root / "s.py"
    spec.write_text("def make():\n    return " + repr({
        "name": "lr-wd", "data": str(tiny_store.path), "out": str(root / "runs"), "results": str(root / "res"),
        "set": {"model.depth": 1, "model.head_dim": 16, "model.seq_len": 32, "train.batch_size": 4,
                "train.tokens": 1024, "train.log_every": 2, "train.eval_every": 4},
        "grid": {"optim.lr": [1e-3, 4e-3], "optim.weight_decay": [0.1, 1.0]}}) + "\n")
    assert main(["sweep", f"{spec}:make", "--workers", "1", "--threads", "1"]) == 0
    return root
