"""Where the points of a sweep run: here one after another, in N local processes, or as Ray tasks.

An executor takes a picklable function and a list of tasks and yields `(index, result)` as each
task finishes, in finishing order. The function never raises for a failed run: it returns a
result with status 'failed' (see `scarce.runs.launch.run_task`); an executor only turns a crash of
the process that ran a task (a killed worker, a lost Ray node) into such a result.

Threads are split, not multiplied: N workers on C cores run C // N torch threads each, because
oversubscribed threads stall badly on a shared CPU. On a machine with GPUs, worker k sees only GPU
k mod G (CUDA_VISIBLE_DEVICES), so N = n x G workers train n runs on each GPU instead of all on the first (how
many: `scarce.runs.gpushare`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace

import torch

from scarce.errors import UserError

EXECUTORS = ("local", "ray")


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use (its CUDA_VISIBLE_DEVICES, else all); [] without CUDA."""
    if not torch.cuda.is_available():
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_of_worker(index: int, gpus: list[str]) -> str:
    return gpus[index % len(gpus)]


def crashed(error: BaseException) -> dict:
    return {"status": "failed", "error": f"{type(error).__name__}: {error} (the process running the point died)"}


class LocalExecutor:
    """One point after another in this process, with all the cores."""

    name = "local"
    concurrent = False

    def __init__(self, threads: int = 0):
        self.threads = threads or cpu_count()

    def map(self, fn: Callable[[dict], dict], tasks: list[dict]) -> Iterator[tuple[int, dict]]:
        for i, task in enumerate(tasks):
            yield i, fn(task)


class ProcessExecutor:
    """N points at once, each in a fresh spawned process (no forked torch state) with C // N threads.

    Used as a context manager (`with ProcessExecutor(n) as pool:`) its worker processes outlive one `map`:
    several threads (the samples of `scarce bench --samples`) can then map their points onto the same N
    workers at once, so that one caller's idle stretch (a fit, an evaluation, a stage's last long run) is
    filled by another's points instead of leaving cores idle."""

    name = "workers"
    concurrent = True

    def __init__(self, workers: int, threads: int = 0):
        self.workers = workers
        self.threads = threads or max(1, cpu_count() // workers)
        self.gpus = visible_gpus()
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_start_worker,
                                   initargs=(ctx.Value("i", 0), self.gpus, os.getpid()))

    def __enter__(self) -> ProcessExecutor:
        self._pool = self._new_pool()
        return self

    def __exit__(self, kind, error, tb) -> None:
        pool, self._pool = self._pool, None
        if kind is None:
            pool.shutdown()
        else:  # a caller failed or was interrupted: no worker outlives it
            _stop_pool(pool)

    def map(self, fn: Callable[[dict], dict], tasks: list[dict]) -> Iterator[tuple[int, dict]]:
        shared = self._pool is not None
        pool = self._pool if shared else self._new_pool()
        futures = {}
        try:
            futures = {pool.submit(_call, fn, task): i for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except Exception as e:  # BrokenProcessPool: a worker was killed
                    yield futures[future], crashed(e)
        except BaseException:  # Ctrl-C, SIGTERM, or the caller stopped early: start no more points
            if shared:  # this caller's queued points only; the pool's owner stops the workers
                for future in futures:
                    future.cancel()
            else:
                _stop_pool(pool)
            raise
        if not shared:
            pool.shutdown()


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    workers = list((pool._processes or {}).values())  # shutdown() forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    stop_workers(workers)


_busy = False
"""In a worker process: whether it is running a task."""


def _interrupt(signum, frame) -> None:
    if not _busy:  # idle: nothing to record, leave quietly
        os._exit(128 + signum)
    raise KeyboardInterrupt


def _start_worker(counter, gpus: list[str], parent: int | None = None) -> None:
    """In a new worker, before any task (and before CUDA starts): its GPU, its signal handlers, and (given the
    parent's pid) its end with the parent's."""
    if gpus:
        with counter.get_lock():
            index, counter.value = counter.value, counter.value + 1
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_of_worker(index, gpus)
    _interruptible()
    if parent is not None:
        _die_with_parent(parent)


PARENT_POLL_S = 1.0
"""How often a worker checks that the process that started it is alive."""


def _die_with_parent(parent: int) -> None:
    """SIGTERM this worker once the sweep process is gone, even by SIGKILL (which it cannot pass on): the worker
    records its run as interrupted and exits instead of living on as an orphan. A thread of the worker watches
    its parent's pid. (Linux's PR_SET_PDEATHSIG would fire when the *thread* that started the worker ends, and
    a shared pool's workers are started by whichever sample thread submits first, which may end long before
    the pool: `bench --samples` lost its workers that way when one sample finished before another.)"""
    if os.getppid() != parent:  # the parent died before the worker got here
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="scarce-parent-watch", daemon=True).start()


def _interruptible() -> None:
    """In a worker: SIGINT and SIGTERM interrupt the running task, whatever the parent ignored (a shell's
    background job ignores SIGINT), so a stopped worker records its run as interrupted."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)


def _call(fn: Callable[[dict], dict], task: dict) -> dict:
    """Run one task in a worker; once interrupted (its run is recorded as such) the worker exits instead
    of taking the next queued task."""
    global _busy
    _busy = True
    try:
        return fn(task)
    except KeyboardInterrupt:
        os._exit(130)
    finally:
        _busy = False


def stop_workers(workers: list, patience: float = 10.0) -> None:
    """Interrupt a pool's worker processes (their runs record the interruption and stop), and terminate
    any that has not exited after `patience` seconds: no worker outlives the sweep that started it."""
    procs = [p for p in workers if p.is_alive()]
    for p in procs:
        with contextlib.suppress(OSError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + patience
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.terminate()


class RayExecutor:
    """Each point a Ray task asking for `threads` CPUs, on the cluster at `address` or on a local
    Ray instance started here (and stopped when the sweep ends). On a multi-machine cluster the token
    store, the run folders and the results root must be on a filesystem every node sees."""

    name = "ray"
    concurrent = True

    def __init__(self, address: str | None = None, threads: int = 1, num_cpus: int | None = None):
        if not _has_ray():  # refused here, before a sweep, recipe or bench writes a store or a run store
            _import_ray()
        self.address, self.threads, self.num_cpus = address, threads, num_cpus

    def map(self, fn: Callable[[dict], dict], tasks: list[dict]) -> Iterator[tuple[int, dict]]:
        ray = _import_ray()
        started = not ray.is_initialized()
        if started:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.num_cpus or cpu_count(), include_dashboard=False, log_to_driver=False)
        try:
            remote = ray.remote(num_cpus=self.threads, max_retries=0)(fn)
            pending: dict = {}
            for i, task in enumerate(tasks):
                pending[remote.remote(task)] = i
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(ready[0])
                try:
                    yield i, ray.get(ready[0])
                except ray.exceptions.RayError as e:
                    yield i, crashed(e)
        except BaseException:  # Ctrl-C, or the caller stopped early: cancel what has not finished
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()


def _has_ray() -> bool:
    """Whether Ray can be imported, told without importing it (seconds)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except ValueError:  # a module without a spec put in sys.modules by hand
        return True


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("the ray executor needs Ray: pip install 'scarce[ray]' (or pip install ray)") from None
    return ray


def make_executor(name: str = "local", workers: int = 1, ray_address: str | None = None, threads: int = 0):
    """The executor the CLI options name; `threads` (0: split the cores) is each point's torch threads."""
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
    if workers < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    if threads < 0:
        raise UserError(f"threads per point must be >= 0 (0 splits the cores), got {threads}")
    if name == "ray":
        return RayExecutor(ray_address, threads or 1, num_cpus=None)
    if ray_address:
        raise UserError("a Ray address needs the ray executor")
    return ProcessExecutor(workers, threads) if workers > 1 else LocalExecutor(threads)


@dataclass(frozen=True)
class Execution:
    """Where and how many runs train, and where they are recorded: the CLI's options in one object, handed from
    the command through bench, recipes and sweeps (none of them takes these settings loose)."""

    executor: str = "local"
    """'local' (processes on this machine) or 'ray' (tasks on a Ray cluster)."""
    workers: int = 0
    """Local processes at once; 0 plans them (`scarce.runs.gpushare.plan_workers`: `workers_per_gpu` on each GPU,
    else one per core)."""
    workers_per_gpu: int | None = None
    """Runs at once on each visible GPU when `workers` is 0 (None or 0: measured on the command's largest run)."""
    results: str | None = None
    """Results root holding runs.db (None: $SCARCE_RESULTS, else ./scarce-results)."""
    branch: bool = True
    """Runs of one setting that differ in epochs share their stable phase (`scarce.runs.branch`)."""
    pool: object = None
    """An executor already made (`make_executor`), used for every batch instead of making one: `held` sets it, and
    benches running at the same time share one (`bench --samples`)."""
    threads: Callable[[], int] | None = None
    """The torch threads of the command's own work beside the runs (a bench's evaluations), asked before each;
    None: its default."""
    ray_address: str | None = None
    """Address of an existing Ray cluster (None: a local Ray instance)."""
    cost: dict | None = None
    """What a device-hour is and costs (`--gpu`, `--gpu-price`, `--mfu`), for the hours and dollars a report
    quotes; None: not priced."""

    def check(self) -> None:
        """Fail on a bad executor or Ray address before any work."""
        make_executor(self.executor, 1, self.ray_address)

    def held(self, workers: int = 1, threads: int = 0) -> Execution:
        """This execution with its executor made once (`workers` processes, `threads` torch threads per run), for
        every batch after; an execution holding one already is returned as it is."""
        if self.pool is not None:
            return self
        return replace(self, workers=workers, pool=make_executor(self.executor, workers, self.ray_address, threads))
