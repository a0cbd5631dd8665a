"""Where and how a run executes: device, precision, threads, distributed rank, and the FLOP/s peak."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import platform
import time
from dataclasses import dataclass

import torch

from scarce import cache
from scarce.config import TrainConfig
from scarce.device import pick_device

# Dense bf16 peaks of common accelerators (FLOP/s), for MFU on GPUs.
GPU_PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


@dataclass
class Runtime:
    device: str
    precision: str
    rank: int = 0
    world: int = 1
    distributed: bool = False
    """Launched by torchrun (even one process): a process group and DDP, as a multi-GPU run has."""

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def is_main(self) -> bool:
        return self.rank == 0


NO_CUDA = "train.device=cuda but no CUDA device is available; use train.device=cpu or auto"


def make_runtime(cfg: TrainConfig) -> Runtime:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device, NO_CUDA)
    if device == "cpu":
        keep_freed_memory()
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" else "fp32"
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    distributed = world > 1 or "LOCAL_RANK" in os.environ  # torchrun sets LOCAL_RANK for every process
    if distributed:
        init_distributed(device)
    return Runtime(device=device, precision=precision, rank=rank, world=world, distributed=distributed)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@functools.cache
def keep_freed_memory() -> bool:
    """On glibc (Linux), serve allocations up to 32 MB (glibc's largest threshold) from the heap and keep up to
    1 GB of freed memory there, instead of mapping every large tensor afresh and returning it to the system when
    freed: a CPU training step allocates and frees the same activation-sized blocks every step, and each fresh
    mapping is page-faulted and zeroed on first touch. Measured: about 4-5% faster per step at 2 threads, 1.5%
    at 1, in alternating A/B runs (benchmarks/results/throughput_cpu.md). The process keeps its peak heap instead of shrinking after
    each step. False (nothing changed) where the C library has no mallopt."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


@functools.cache
def peak_flops(device: str, threads: int) -> float:
    """The FLOP/s that MFU divides by: a table value on GPUs (dense bf16); on CPU the highest fp32 matmul
    rate ever measured on this machine at this thread count. A probe (~0.3 s) runs at every start, but a
    machine shared with other work reads low, so the maximum over runs is kept in
    $XDG_CACHE_HOME/scarce/peak_flops.json (delete it to measure afresh)."""
    if device == "cuda":
        name = torch.cuda.get_device_name()
        return next((v for k, v in GPU_PEAKS.items() if k in name), 989e12)
    key = f"{platform.node()}|{platform.processor() or platform.machine()}|{threads}|torch {torch.__version__}"
    known = float(cache.read("peak_flops.json").get(key, 0.0))
    peak = max(measure_matmul_flops(1024, 0.3), known)
    if peak > known:
        cache.update("peak_flops.json", {key: peak})
    return peak


COMPILE_COST = {"cpu": (25.0, 1.05, 0.60), "cuda": (60.0, 1.8, 0.30)}
"""Per device type, what `compile_decision` assumes: (seconds torch.compile takes before the first step, speed-up
of a compiled step over an eager one, eager MFU). Measured (benchmarks/results/throughput_cpu.md,
gpu_check_h200.md): CPU (2 cores, fp32, the fused head + cross-entropy in both) compile 6-25 s, compiled/eager
tokens/s 0.95-1.07x at tiny and 1.05-1.08x at small, eager MFU 60% / 74%; H200 bf16 gpt2-small compile 28.9 s
cold, 1.89x, eager MFU 28%. Conservative ends are taken: a wrong "off" costs a fraction of the run, a wrong
"on" at most the compile time."""


def compile_decision(setting: bool | str, device: str, train_flops: float, peak: float) -> tuple[bool, str]:
    """Whether to torch.compile a run, and why. `setting` is train.compile; for 'auto' the run's eager time is
    estimated from its training FLOPs and the peak (`COMPILE_COST`'s eager MFU) and compiling is chosen when
    the time it saves is at least twice the compile time."""
    if setting != "auto":
        return bool(setting), "set in the config"
    cost, speedup, mfu = COMPILE_COST["cuda" if device == "cuda" else "cpu"]
    eager = train_flops / (peak * mfu)
    saved = eager * (1.0 - 1.0 / speedup)
    on = saved >= 2.0 * cost
    return on, (f"auto: estimated eager training {eager:,.0f} s, compiling would save ~{saved:,.0f} s "
                f"{'>=' if on else '<'} 2 x its ~{cost:.0f} s")


def measure_matmul_flops(n: int = 1024, seconds: float = 1.0) -> float:
    """Best sustained FLOP/s of an n x n x n fp32 matmul on this CPU with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t0))
    return best


def close_distributed(barrier: bool = False) -> None:
    """Leave the torchrun process group, if this process joined one. Gloo's worker threads may still hold work
    (and its tensors) when the interpreter tears down, which aborts a rank ("terminate called without an active
    exception"): so drop what is unreachable, wait (`barrier`, where every rank got here alike: a gloo barrier waits
    for all work queued before it), then destroy the group while the interpreter is whole."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    if barrier:
        dist.barrier()
    dist.destroy_process_group()


def init_distributed(device: str) -> None:
    """Join the torchrun process group: NCCL on GPUs, gloo on CPUs."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
