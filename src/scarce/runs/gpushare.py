"""Several runs on one GPU: how many at once, from one run's measured memory and utilisation.

Small models leave a GPU mostly idle: one tiny or small run is bound by kernel launches (2-7% MFU on an H200,
benchmarks/results/gpu_check_h200.md), so several processes training at once on the same GPU fill the gaps
between each other's kernels. `measure` trains a few steps of a run's config (its trainer, loader, objective and
optimizer: what a worker runs) and reads the peak memory and the MFU; `per_gpu` turns them into a number of
workers: as many as it takes to bring the summed MFU to `TARGET_MFU`, no more than the memory holds (with a CUDA
context per process and headroom) or than the CPU cores that feed them, at most `MAX_PER_GPU`. Worker k of N
trains on GPU k mod G (`scarce.runs.executors`), so N = G x per-GPU workers share the GPUs evenly.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from scarce.config import RunConfig
from scarce.errors import UserError
from scarce.runs import executors
from scarce.train.runtime import peak_flops
from scarce.train.trainer import Trainer

TARGET_MFU = 0.4
"""Summed MFU the workers of one GPU aim at: about what one compiled gpt2-small run reaches alone (52% on an H200,
gpu_check_h200.md); beyond it more processes mostly queue behind each other's kernels."""
MAX_PER_GPU = 16
CONTEXT_BYTES = 600 * 2**20
"""Memory each process holds on the GPU before its first tensor (the CUDA context and kernels loaded)."""
HEADROOM = 0.9
"""Share of the GPU's memory the workers may plan to use (the rest for fragmentation and evaluation)."""
GiB = 2**30


@dataclass
class Probe:
    """One run's measurement: `peak_bytes` of GPU memory (0 on a CPU), of `total_bytes`; its tokens/s and MFU."""

    device: str
    peak_bytes: int
    total_bytes: int
    tokens_per_second: float
    mfu: float
    steps: int

    def as_dict(self) -> dict:
        return asdict(self)


def measure(cfg: RunConfig, steps: int = 8, warmup: int = 3) -> Probe:
    """Train `warmup` + `steps` steps of `cfg` (a throwaway run folder, nothing kept) on its device and measure the
    timed steps: tokens/s, MFU against the device's peak, and on CUDA the peak memory allocated."""
    with tempfile.TemporaryDirectory(prefix="scarce-probe-") as tmp:
        trainer = Trainer(cfg, tmp, quiet=True)
        device = trainer.rt.device
        cuda = device == "cuda"
        for step in range(warmup):
            trainer.train_step(step)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for step in range(warmup, warmup + steps):
            trainer.train_step(step)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        tps = steps * trainer.tokens_per_step / seconds
        mfu = tps * trainer.flops_per_token / peak_flops(device, torch.get_num_threads())
        peak = int(torch.cuda.max_memory_reserved()) if cuda else 0
        total = int(torch.cuda.get_device_properties(0).total_memory) if cuda else 0
        del trainer
        if cuda:
            torch.cuda.empty_cache()
    return Probe(device, peak, total, tps, mfu, steps)


def memory_cap(probe: Probe) -> int:
    """Workers whose peaks (plus a CUDA context each) fit in HEADROOM of the GPU; unbounded (0) on a CPU."""
    if not probe.total_bytes:
        return 0
    return int(HEADROOM * probe.total_bytes // (probe.peak_bytes + CONTEXT_BYTES))


def per_gpu(probe: Probe, cores_per_gpu: int, requested: int = 0) -> tuple[int, str]:
    """Workers per GPU and why: `requested` (refused when the measured memory cannot hold them), else the fewest
    that bring the summed MFU to TARGET_MFU, within the memory, the cores per GPU and MAX_PER_GPU."""
    cap = memory_cap(probe)
    need = (probe.peak_bytes + CONTEXT_BYTES) / GiB
    if requested:
        if cap and requested > cap:
            raise UserError(f"{requested} workers per GPU need ~{requested * need:.1f} GiB (one run measured "
                            f"{probe.peak_bytes / GiB:.2f} GiB peak + {CONTEXT_BYTES / GiB:.2f} GiB CUDA context) "
                            f"but the GPU has {probe.total_bytes / GiB:.1f} GiB ({HEADROOM:.0%} usable): at most {cap}")
        return requested, "set on the command line"
    by_mfu = math.ceil(TARGET_MFU / max(probe.mfu, 1e-4))
    limits = {"the MFU target": by_mfu, "the CPU cores per GPU": max(1, cores_per_gpu), "the cap": MAX_PER_GPU}
    if cap:
        limits["the memory"] = max(1, cap)
    n = max(1, min(limits.values()))
    bound = min(limits, key=lambda k: limits[k])
    memory = (f"{probe.peak_bytes / GiB:.2f} GiB peak of {probe.total_bytes / GiB:.1f} GiB" if probe.total_bytes
              else "no GPU memory measured")
    return n, (f"one run measured {probe.mfu:.1%} MFU, {probe.tokens_per_second:,.0f} tokens/s, {memory}: {n} per GPU "
               f"(bound by {bound}; {TARGET_MFU:.0%} summed MFU would take {by_mfu})")


def check_request(workers: int = 0, requested: int | None = None) -> None:
    """The one-line errors of a worker request, before any work."""
    if workers < 0:
        raise UserError(f"workers must be >= 1, got {workers}")
    if workers and requested:
        raise UserError("give --workers (all workers) or --workers-per-gpu, not both")
    if requested and not executors.visible_gpus():
        raise UserError("--workers-per-gpu needs a visible GPU (CUDA is not available here): use --workers N")


def plan_workers(workers: int = 0, requested: int | None = None, probe: Callable[[], RunConfig] | None = None,
                 log: Callable[[str], None] = print) -> int:
    """Workers for a batch of runs: `workers` when given (all of them, whatever the GPUs); on a machine with G
    visible GPUs, G x the workers per GPU (`requested`, or 0/None: measured on the config `probe` returns, or 1
    without one); without a GPU, one per core. The memory check needs the probe: a requested count it cannot
    hold is a one-line error naming the measured memory."""
    check_request(workers, requested)
    gpus = executors.visible_gpus()
    if workers:
        return workers
    if not gpus:
        return executors.cpu_count()
    if probe is None:
        return len(gpus) * (requested or 1)
    measured = measure(probe())
    n, why = per_gpu(measured, executors.cpu_count() // len(gpus), requested or 0)
    log(f"workers per GPU: {why}; {len(gpus)} GPU(s), {n * len(gpus)} worker(s)")
    return n * len(gpus)
