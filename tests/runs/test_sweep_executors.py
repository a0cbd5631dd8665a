"""Executors: N local worker processes and Ray tasks produce the same run-store rows as one process."""

from __future__ import annotations

import importlib.util

import pytest

from scarce.runs.executors import LocalExecutor, ProcessExecutor, RayExecutor, make_executor
from scarce.runs.store import RunStore
from scarce.runs.sweep import run_sweep

TINY = {"model.depth": 1, "model.aspect_ratio": 32, "model.head_dim": 16, "model.seq_len": 32,
        "train.batch_size": 4, "train.tokens": 256, "train.eval_tokens": 256, "train.log_every": 1000}


@pytest.fixture(scope="module")
def spec(tiny_store):
    return {"name": "ex", "data": str(tiny_store.path), "set": TINY, "grid": {"optim.lr": [1e-3, 3e-3]}}


def run_with(spec, executor, tmp_path, name) -> dict:
    report = run_sweep({**spec, "out": str(tmp_path / name / "runs")}, executor, results=str(tmp_path / name),
                       log=lambda *a: None)
    assert report.complete
    store = RunStore(tmp_path / name)
    rows = {r["id"]: (r["status"], r["val_loss"]) for r in store.list(sweep="ex")}
    store.close()
    return rows


def test_make_executor_splits_threads():
    assert isinstance(make_executor("local", 1, threads=1), LocalExecutor)
    ex = make_executor("local", 2)
    assert isinstance(ex, ProcessExecutor) and ex.threads >= 1
    assert make_executor("ray", 1).threads == 1


@pytest.fixture(scope="module")
def local(spec, tmp_path_factory):
    rows = run_with(spec, LocalExecutor(threads=1), tmp_path_factory.mktemp("local"), "local")
    assert len(rows) == 2
    return rows


def test_workers_match_local(spec, local, tmp_path):
    workers = run_with(spec, ProcessExecutor(2, threads=1), tmp_path, "workers")
    assert workers == local  # same ids, statuses and (CPU, fixed seed) losses


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the ray extra")
def test_ray_matches_local(spec, local, tmp_path):
    ray_rows = run_with(spec, RayExecutor(threads=1, num_cpus=2), tmp_path, "ray")
    assert ray_rows == local
