"""The one way scarce trains: start, continue or reuse a run from its config, and record it.

`train(config, run_dir)` starts a run, `resume(run_dir)` continues one from its latest checkpoint,
`run(config, run_dir)` does whichever the folder calls for (start, continue, or reuse a finished run of
the same config). All three build the `Trainer` from the config alone, so any run (plain, distilled,
mixed, snapshot, looped, averaged) resumes as exactly itself. Sweeps, recipes, ensembles,
distillation and the bench only produce configs and hand them to `run_jobs`, which runs them on an
executor (this process, local worker processes or Ray) through `run_task`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from scarce import atomic, rundir, track
from scarce.config import RunConfig
from scarce.data.store import open_store
from scarce.device import pick_device
from scarce.errors import Diverged, UserError
from scarce.model import hf
from scarce.progress import format_seconds
from scarce.runs import branch
from scarce.runs.executors import LocalExecutor
from scarce.runs.store import RunStore, results_root
from scarce.sample import available_memory
from scarce.train.runtime import NO_CUDA
from scarce.train.trainer import Trainer, resolve_config


def absolute_paths(cfg: RunConfig) -> RunConfig:
    """The config with every path it names made absolute (token stores, teachers, init source), so the run
    reads the same files from any working directory."""
    if not cfg.data:
        raise UserError("the config names no token store (field data; make one with `scarce prepare`)")
    cfg = RunConfig.from_dict(cfg.to_dict())
    cfg.data = str(Path(cfg.data).resolve())
    if cfg.mix.store:
        cfg.mix.store = str(Path(cfg.mix.store).resolve())
    cfg.mix.stores = [str(Path(p).resolve()) for p in cfg.mix.stores]
    cfg.objective.teachers = [str(Path(t).resolve()) for t in cfg.objective.teachers]
    if hf.is_hf(cfg.init.source):
        cfg.init.source = hf.PREFIX + hf.name_of(cfg.init.source)
    elif cfg.init.source:
        cfg.init.source = str(Path(cfg.init.source).resolve())
    return cfg


def train(cfg: RunConfig, run_dir: str | Path, results: str | None = None, quiet: bool = False,
          stop_at_step: int | None = None, resolved: bool = False, branch_from: str | None = None) -> dict | None:
    """Start a run in `run_dir` (which must not hold one yet); returns its summary. `stop_at_step` stops
    it as if killed after that many steps (tests), returning None. `resolved`: `cfg` comes from `resolved_id`
    (paths absolute, filled from the store and checked), so it is not resolved again. `branch_from`: a trunk's
    checkpoint at this run's decay start (`scarce.runs.branch`), which the run continues from. The folder is
    held by this process until it returns (`rundir.claim`): a second process given it is refused."""
    run_dir = Path(run_dir)
    if (why := atomic.unmakeable(run_dir)) is not None:
        raise UserError(f"the run directory {run_dir} {why}")
    with _claim(run_dir), _disk_full(run_dir):
        return _train(cfg, run_dir, results, quiet, stop_at_step, resolved, branch_from)


FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(UserError):
    """The disk under a run filled up while it wrote: the run is interrupted, not failed (resumed as it is)."""


def _is_full(error: BaseException) -> bool:
    return isinstance(error, DiskFull) or (isinstance(error, OSError) and error.errno in FULL) or \
        (isinstance(error, sqlite3.OperationalError) and "disk is full" in str(error))


@contextlib.contextmanager
def _disk_full(run_dir: str | Path):
    """A full disk (or quota) while the run writes (a checkpoint, metrics, the run store) as one line saying what to
    free and how to continue: every file is written under a temporary name and renamed, so the last checkpoint is
    intact and the resumed run ends as an uninterrupted one would."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as e:
        if not _is_full(e):
            raise
        where = getattr(e, "filename", None) or run_dir
        raise DiskFull(f"the disk is full (writing {where}): free space there (old runs, their checkpoints/ "
                        f"folders) and continue with `scarce train --resume {run_dir}`, which starts from the last "
                        "checkpoint") from None


def _claim(run_dir: Path, create: bool = True):
    """This process's hold on the run folder; rank 0 of a torchrun job holds it for every rank."""
    return rundir.claim(run_dir, create) if int(os.environ.get("RANK", 0)) == 0 else contextlib.nullcontext()


def _train(cfg: RunConfig, run_dir: Path, results: str | None, quiet: bool, stop_at_step: int | None,
           resolved: bool, branch_from: str | None) -> dict | None:
    if rundir.is_run(run_dir):
        raise UserError(f"{run_dir} already holds a run; resume it or start the new one in another folder")
    check_model_size(cfg)
    trainer = Trainer(cfg if resolved else absolute_paths(cfg), run_dir, quiet, resolved=resolved)
    results = str(results_root(results).resolve())
    if trainer.rt.is_main:
        RunStore(results).close()  # a results root that cannot hold the run store fails before the run dir is written
        if branch_from:
            if (why := branch.not_branchable(trainer.cfg)) is not None:
                raise UserError(f"{run_dir} cannot branch from {branch_from}: {why}")
            if (start := branch.verified(Path(branch_from))) is not None:
                branch.seed_branch(run_dir, start, branch.decay_start(trainer.cfg, trainer.steps), trainer.compiled)
        rundir.write_config(run_dir, trainer.cfg)
        rundir.write_run_info(run_dir, results, trainer.store)
    if branch_from:
        trainer.restore()
    return _recorded(trainer, results, stop_at_step)


def resume(run_dir: str | Path, results: str | None = None, quiet: bool = False,
           stop_at_step: int | None = None) -> dict | None:
    """Continue a killed run from its latest checkpoint, to the same result as an uninterrupted run. It is
    recorded in the results root it started with unless `results` names another."""
    with _claim(Path(run_dir), create=False), _disk_full(run_dir):
        return _resume(run_dir, results, quiet, stop_at_step)


def _resume(run_dir: str | Path, results: str | None, quiet: bool, stop_at_step: int | None) -> dict | None:
    cfg = rundir.read_config(run_dir)
    if (diverged := rundir.read_diverged(run_dir)) is not None:
        raise Diverged(f"{run_dir} holds a diverged run ({diverged['error']}); resuming would diverge again: "
                       f"change its settings and start a new run")
    if not cfg.data:
        raise UserError(f"{Path(run_dir) / rundir.CONFIG} names no token store (field data); the run directory "
                        "is damaged")
    trainer = Trainer(cfg, Path(run_dir), quiet, resolved=True)  # config.json holds the config as resolved
    results = results or rundir.results_root_of(run_dir)
    trainer.restore()
    if trainer.state.step >= trainer.steps and trainer.state.best:
        rundir.load_weights(rundir.best_weights(run_dir))  # the weights it hands on, checked against their digest
        trainer.say(f"{run_dir} is already complete")
        summary = trainer.summary()
        _ensure_recorded(trainer.run_id, trainer.cfg, run_dir, trainer.store.fingerprint, summary, results)
        return summary
    return _recorded(trainer, results, stop_at_step)


def run(cfg: RunConfig, run_dir: str | Path, results: str | None = None, quiet: bool = False,
        resolved: bool = False, branch_from: str | None = None) -> dict:
    """Start the run, continue it when `run_dir` holds it unfinished, or return its summary when it is
    complete; a folder holding a run of another config is refused."""
    run_dir = Path(run_dir)
    if not rundir.is_run(run_dir) and (why := atomic.unmakeable(run_dir)) is not None:
        raise UserError(f"the run directory {run_dir} {why}")
    with _claim(run_dir), _disk_full(run_dir):
        if not rundir.is_run(run_dir):
            return _train(cfg, run_dir, results, quiet, None, resolved, branch_from)
        return _reuse(cfg, run_dir, results, quiet)


def _reuse(cfg: RunConfig, run_dir: Path, results: str | None, quiet: bool) -> dict:
    """`run` of a folder that holds a run: continue it, or return its summary when it is complete."""
    cfg = absolute_paths(cfg)
    stored = rundir.read_config(run_dir)
    if same_run(stored, cfg):
        summary = rundir.read_summary(run_dir)
        if summary is None:
            return _resume(run_dir, results, quiet, None)
        results = results or rundir.results_root_of(run_dir)
        _ensure_recorded(summary["run_id"], stored, run_dir, summary.get("data", ""), summary, results)
        return summary
    raise UserError(f"{run_dir} holds a run of another config (other preset, overrides or ensemble settings); "
                    "choose another folder")


MAX_DIM = 2**31 - 1
"""The largest size of one tensor dimension torch's kernels index (32-bit)."""


def check_model_size(cfg: RunConfig) -> None:
    """A one-line error, before anything is allocated, for a model that cannot be built here: a dimension past
    what torch indexes, or more weights, gradients and optimizer state than the memory available. The count is a
    lower bound (the q and output projections of each block, the embedding; 12 bytes a parameter: weight,
    gradient, one moment), so a model this refuses could not train whatever its other knobs."""
    m = cfg.model
    width = m.d_model
    for name, value in (("model.depth", m.depth), ("model.width", width), ("model.seq_len", m.seq_len)):
        if value > MAX_DIM:
            raise UserError(f"{name} = {value:,} is beyond what a tensor dimension holds ({MAX_DIM:,}); "
                            "choose a smaller model")
    params = m.depth * 2 * width * width + max(m.vocab_size, 256) * width
    ranks = int(os.environ.get("WORLD_SIZE", 1)) if cfg.train.parallel == "fsdp" else 1
    need = 12 * params // ranks
    device = pick_device(cfg.train.device, NO_CUDA)  # the runtime would refuse a missing GPU a moment later
    have = available_memory(device)
    if have is not None and need > have:
        raise UserError(f"model.depth={m.depth} (width {width:,}) makes a model of more than {params:.3g} "
                        f"parameters, whose weights, gradients and optimizer state need more than "
                        f"{need / 2**30:,.1f} GiB, beyond the {have / 2**30:,.1f} GiB available on {device}; "
                        "choose a smaller model.depth (or model.width)")


def same_run(stored: RunConfig, cfg: RunConfig) -> bool:
    """Whether a stored (resolved) config is the run `cfg` asks for."""
    probe = RunConfig.from_dict(cfg.to_dict())
    if hf.is_hf(probe.init.source):  # the architecture was filled from the HF model
        probe.model = hf.resolve(probe.model, probe.init.source)
    if probe.model.vocab_size == 0:  # filled from the token store when the run started
        probe.model.vocab_size = stored.model.vocab_size
    return stored.run_id() == probe.run_id()


def _recorded(trainer: Trainer, results: str | None, stop_at_step: int | None) -> dict | None:
    """Run the trainer with its row in the run store: running, then done or failed."""
    runs = RunStore(results) if trainer.rt.is_main else None
    if runs:
        runs.start(trainer.run_id, trainer.cfg.to_dict(), trainer.run_dir, trainer.store.fingerprint)
    try:
        summary = trainer.run(stop_at_step)
        if runs and summary is not None:
            runs.finish(trainer.run_id, summary, trainer.run_dir)
    except BaseException as e:
        if isinstance(e, Diverged) and trainer.rt.is_main:
            rundir.write_diverged(trainer.run_dir, trainer.run_id, trainer.state.step, str(e))
        if runs:
            try:
                runs.fail(trainer.run_id, _error_text(e), trainer.run_dir, _status(e))
            except sqlite3.OperationalError:
                if not _is_full(e):  # a full disk may hold the run store too: its row stays running (resumed)
                    raise
        raise
    finally:
        if runs:
            runs.close()
    if summary is not None:
        trainer.say(f"done: val {summary['val_loss']:.4f} nats/token, {summary['val_bpb']:.4f} bpb "
                    f"(checkpoint of step {summary['best_step']}, chosen on select) in "
                    f"{format_seconds(summary['wall_seconds'])} -> {trainer.run_dir}/{rundir.SUMMARY}")
    return summary


def _ensure_recorded(run_id: str, cfg: RunConfig, run_dir, data: str, summary: dict, results: str | None) -> None:
    """A complete run found on disk has a 'done' row in the run store (an earlier store, or a copied folder)."""
    store = RunStore(results)
    try:
        row = store.get(run_id, run_dir)
        if row is None or row.status != "done":
            if row is None:
                store.start(run_id, cfg.to_dict(), run_dir, data)
            store.finish(run_id, summary, run_dir)
    finally:
        store.close()


# -- many runs on an executor ------------------------------------------------------------------------

@dataclass
class Job:
    """A run to make: its config and its folder; with `run_id` (and `fingerprint`) the config is the one
    `resolved_id` returned, and is not resolved again."""

    config: RunConfig
    run_dir: Path
    run_id: str = ""
    fingerprint: str = ""
    branch_from: str = ""
    """A trunk's checkpoint to continue from (`scarce.runs.branch`); empty: train from step 0."""


def run_task(task: dict) -> dict:
    """Make one run (start, continue or reuse) and record it; never raises for a failed run. A task is
    {config, run_dir, results, threads, quiet[, train_fn]}: plain data, so it can go to another process
    or machine. `train_fn(cfg, run_dir, results) -> summary` replaces training (tests)."""
    cfg = RunConfig.from_dict(task["config"])
    if task.get("threads") and not cfg.train.threads:
        cfg = replace(cfg, train=replace(cfg.train, threads=task["threads"]))
    if task.get("tracker") and not cfg.train.tracker:  # the launching process's $SCARCE_TRACKER, for any node
        cfg = replace(cfg, train=replace(cfg.train, tracker=task["tracker"]))
    run_dir, results, train_fn = Path(task["run_dir"]), task.get("results"), task.get("train_fn")
    t0 = time.perf_counter()
    try:
        if train_fn is not None:
            summary = train_fn(cfg, run_dir, results)
            _ensure_recorded(task["run_id"], cfg, run_dir, task.get("fingerprint", ""), summary, results)
        else:
            summary = run(cfg, run_dir, results, task.get("quiet", True), resolved=task.get("resolved", False),
                          branch_from=task.get("branch_from"))
    except rundir.Claimed as e:  # the run is another process's, and so is its row: neither is touched
        return {"status": "failed", "error": f"UserError: {e}", "seconds": time.perf_counter() - t0}
    except Exception as e:
        error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"
        try:
            _record_failure(task, cfg, error, _status(e))
        except (OSError, sqlite3.OperationalError, UserError):
            if not _is_full(e):  # the run store on the full disk: the row stays running, which is resumed too
                raise
        return {"status": _status(e), "error": error, "seconds": time.perf_counter() - t0}
    return {"status": "done", "summary": summary, "seconds": time.perf_counter() - t0}


def _status(error: BaseException) -> str:
    """The run store's status of a run that stopped with `error`: interrupted (Ctrl-C, SIGTERM: resumed as it
    is), diverged (a result of its settings) or failed."""
    if isinstance(error, (KeyboardInterrupt, SystemExit)) or _is_full(error):  # resumed as it is
        return "interrupted"
    return "diverged" if isinstance(error, Diverged) else "failed"


def _error_text(error: BaseException) -> str:
    """What the run store keeps of the error: a line for an interruption, the traceback's end for a failure."""
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        return f"{type(error).__name__}: interrupted at a signal (Ctrl-C or SIGTERM); `scarce train --resume` " \
               "or the next sweep continues it"
    return f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=5)}"


def _record_failure(task: dict, cfg: RunConfig, error: str, status: str = "failed") -> None:
    """A run that failed before its training loop started still gets its row, marked failed."""
    run_id = task.get("run_id")
    if not run_id:
        return
    store = RunStore(task.get("results"))
    try:
        if store.get(run_id, task["run_dir"]) is None:
            store.start(run_id, cfg.to_dict(), task["run_dir"], task.get("fingerprint", ""))
        store.fail(run_id, error, task["run_dir"], status)
    finally:
        store.close()


def resolved_id(cfg: RunConfig) -> tuple[RunConfig, str, str]:
    """(config with the store's vocabulary filled in, run id, store fingerprint) of a config to run."""
    store = open_store(cfg.data)
    cfg = resolve_config(absolute_paths(cfg), store)
    return cfg, cfg.run_id(store.fingerprint), store.fingerprint


def job_tasks(jobs: list[Job], executor, results: str | None, quiet: bool = True,
              train_fn: Callable | None = None) -> list[dict]:
    """The executor tasks of `jobs` (in the same order)."""
    tasks = []
    for job in jobs:
        cfg, run_id, fingerprint = (job.config, job.run_id, job.fingerprint) if job.run_id else resolved_id(job.config)
        tasks.append({"config": cfg.to_dict(), "run_dir": str(job.run_dir), "results": results, "run_id": run_id,
                      "fingerprint": fingerprint, "threads": executor.threads, "train_fn": train_fn,
                      "quiet": quiet or executor.concurrent, "resolved": True,
                      "tracker": os.environ.get(track.ENV, ""), "branch_from": job.branch_from})
    return tasks


def run_jobs(jobs: list[Job], executor=None, results: str | None = None, quiet: bool = True,
             train_fn: Callable | None = None, on_done: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Run every job on `executor` (default: here, one after another). Returns each job's result in job
    order: {status: done, summary, seconds} or {status: failed, error, seconds}."""
    executor = executor or LocalExecutor()
    out: list[dict] = [{}] * len(jobs)
    for i, result in executor.map(run_task, job_tasks(jobs, executor, results, quiet, train_fn)):
        out[i] = result
        if on_done:
            on_done(i, result)
    return out


def train_all(jobs: list[Job], executor=None, results: str | None = None, quiet: bool = True) -> list[dict]:
    """Run every job; their summaries in job order, or a UserError naming the first failure."""
    outcomes = run_jobs(jobs, executor, results, quiet)
    failed = [(job.run_dir, r["error"]) for job, r in zip(jobs, outcomes) if r["status"] != "done"]
    if failed:
        where, why = failed[0]
        raise UserError(f"{len(failed)} of {len(jobs)} runs failed (first, {where}: "
                        f"{why.splitlines()[0].removeprefix('UserError: ')})")
    return [r["summary"] for r in outcomes]
