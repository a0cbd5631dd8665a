"""Several runs per GPU: the count from one run's measured memory and MFU, the one-line refusal of more workers
than the memory holds, and worker k on GPU k mod G when each GPU takes several workers."""

from __future__ import annotations

import os
import time
from collections import defaultdict

import pytest

from scarce.errors import UserError
from scarce.runs import executors, gpushare
from scarce.runs.gpushare import GiB, Probe, measure, per_gpu, plan_workers


def _probe(peak_gib: float, mfu: float, total_gib: float = 80.0) -> Probe:
    return Probe("cuda", int(peak_gib * GiB), int(total_gib * GiB), 1e6, mfu, 8)


def test_launch_bound_runs_share_a_gpu_up_to_the_mfu_target():
    n, why = per_gpu(_probe(1.2, 0.03), cores_per_gpu=16)
    assert n == 14 and "the MFU target" in why  # ceil(0.4 / 0.03); memory would hold 40
    assert per_gpu(_probe(1.2, 0.03), cores_per_gpu=4)[0] == 4  # a worker needs a core to launch its kernels
    assert per_gpu(_probe(1.2, 0.001), cores_per_gpu=64)[0] == gpushare.MAX_PER_GPU


def test_memory_bounds_the_workers_of_a_large_run():
    n, why = per_gpu(_probe(30.0, 0.02), cores_per_gpu=16)
    assert n == 2 and "the memory" in why  # 0.9 x 80 GiB over 30 GiB + a context each
    assert per_gpu(_probe(30.0, 0.5), cores_per_gpu=16)[0] == 1  # one run fills the GPU alone
    assert per_gpu(_probe(90.0, 0.5), cores_per_gpu=16)[0] == 1  # never fewer than one


def test_more_workers_than_the_memory_holds_is_refused_naming_the_measured_memory():
    assert per_gpu(_probe(30.0, 0.02), 16, requested=2)[0] == 2
    with pytest.raises(UserError, match=r"3 workers per GPU need ~91\.8 GiB \(one run measured 30\.00 GiB peak"):
        per_gpu(_probe(30.0, 0.02), 16, requested=3)
    assert per_gpu(Probe("cpu", 0, 0, 1e4, 0.5, 8), 2, requested=5)[0] == 5  # no GPU memory to bound a CPU


def test_measure_trains_a_few_steps_and_keeps_nothing(tiny_config, tiny_store, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    p = measure(tiny_config(tiny_store), steps=2, warmup=1)
    assert p.device == "cpu" and p.tokens_per_second > 0 and 0 < p.mfu < 1 and p.peak_bytes == 0 and p.steps == 2
    assert not list(tmp_path.glob("scarce-probe-*"))  # the probe's run folder is gone


def test_plan_workers(monkeypatch):
    logs = []
    assert plan_workers(3) == 3
    monkeypatch.setattr(executors, "visible_gpus", lambda: [])
    assert plan_workers() == executors.cpu_count()
    with pytest.raises(UserError, match="needs a visible GPU"):
        plan_workers(0, 2)
    with pytest.raises(UserError, match="not both"):
        plan_workers(2, 2)
    monkeypatch.setattr(executors, "visible_gpus", lambda: ["0", "1"])
    monkeypatch.setattr(executors, "cpu_count", lambda: 16)
    assert plan_workers(0, 3) == 6  # no probe: the count asked for, on each GPU
    assert plan_workers() == 2  # no probe, none asked: one per GPU
    monkeypatch.setattr(gpushare, "measure", lambda cfg: _probe(1.2, 0.05))
    assert plan_workers(0, None, lambda: "cfg", logs.append) == 16  # 8 per GPU (8 cores each)
    assert "8 per GPU" in logs[-1] and "16 worker(s)" in logs[-1]
    monkeypatch.setattr(gpushare, "measure", lambda cfg: _probe(30.0, 0.05))
    with pytest.raises(UserError, match="GiB"):
        plan_workers(0, 4, lambda: "cfg", logs.append)


def _visible(_task: dict) -> dict:
    time.sleep(0.4)  # long enough that every worker takes tasks
    return {"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


def test_two_workers_per_gpu_split_evenly():
    ex = executors.ProcessExecutor(4, threads=1)
    ex.gpus = ["0", "1"]  # as if the parent saw two GPUs and asked for two workers on each
    by_pid = defaultdict(set)
    for _, r in ex.map(_visible, [{} for _ in range(12)]):
        by_pid[r["pid"]].add(r["gpu"])
    assert all(len(g) == 1 for g in by_pid.values())  # a worker stays on its GPU
    per_gpu_pids = defaultdict(int)
    for gpus in by_pid.values():
        per_gpu_pids[next(iter(gpus))] += 1
    assert set(per_gpu_pids) <= {"0", "1"} and max(per_gpu_pids.values()) <= 2
