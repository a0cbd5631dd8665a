"""Workers on a machine with GPUs: worker k sees GPU k mod G, so parallel runs spread over the GPUs."""

from __future__ import annotations

import multiprocessing
import os
import time

import torch

from scarce.runs import executors
from scarce.runs.gpushare import plan_workers


def _visible(_task: dict) -> dict:
    time.sleep(0.5)  # long enough that both workers take tasks
    return {"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


def test_workers_take_the_gpus_in_turn():
    assert [executors.gpu_of_worker(i, ["0", "1", "2"]) for i in range(5)] == ["0", "1", "2", "0", "1"]
    ex = executors.ProcessExecutor(2, threads=1)
    ex.gpus = ["3", "5"]  # as if the parent saw two GPUs
    seen = [r for _, r in ex.map(_visible, [{} for _ in range(6)])]
    by_worker = {r["pid"]: r["gpu"] for r in seen}
    assert sorted(by_worker.values()) == ["3", "5"]  # one GPU per worker, each its own


def test_no_gpus_leaves_the_environment_alone(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    executors._start_worker(multiprocessing.Value("i", 0), [])
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_visible_gpus_and_the_default_workers(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert executors.visible_gpus() == ["0", "1", "2", "3"] and plan_workers() == 4  # one per GPU without a probe
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,7")
    assert executors.visible_gpus() == ["2", "7"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert executors.visible_gpus() == [] and plan_workers() == executors.cpu_count()


def _pid(_task: dict) -> dict:
    return {"pid": os.getpid()}


def test_a_shared_pool_outlives_the_thread_that_started_its_workers():
    """`bench --samples` shares one pool among sample threads: the first to submit starts the workers, and may
    finish long before the others. Its end must not end the workers (a death signal tied to the starting
    thread did: the other samples' runs failed as 'interrupted')."""
    import threading

    with executors.ProcessExecutor(1, threads=1) as ex:
        first = []
        t = threading.Thread(target=lambda: first.extend(r for _, r in ex.map(_pid, [{}])))
        t.start()
        t.join()
        time.sleep(2 * executors.PARENT_POLL_S)
        [(_, later)] = list(ex.map(_pid, [{}]))
    assert "pid" in first[0] and later.get("pid") == first[0]["pid"], later
