"""What every recipe shares: a context (data, base config, where and how to run) and `run_points`,
which runs a list of override sets as one resumable sweep and returns their run-store rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scarce.config import RunConfig
from scarce.data.store import open_store
from scarce.errors import UserError
from scarce.runs.executors import Execution
from scarce.runs.store import RunRow, RunStore, results_root
from scarce.runs.sweep import SweepSpec, build_config, merge, run_sweep

DEFAULT_SIZES = (2, 4, 6)


@dataclass
class Context:
    data: str
    """Token store the recipe trains on."""
    out: str
    """Folder of the recipe's run directories (one subfolder per sweep) and recipe.json."""
    sizes: list[int] = field(default_factory=lambda: list(DEFAULT_SIZES))
    """Model depths: the size dial."""
    preset: str = "tiny"
    overrides: dict = field(default_factory=dict)
    """Config overrides applied to every run (e.g. batch size, sequence length, threads)."""
    execution: Execution = field(default_factory=Execution)
    """Where the runs train and are recorded (`scarce.runs.executors.Execution`: its `pool`, else one after another
    in this process)."""
    retry_failed: bool = False
    train_fn: Callable | None = None
    """Replaces the trainer (tests and synthetic objectives): train_fn(cfg, run_dir, results) -> summary."""
    log: Callable[[str], None] = print

    def __post_init__(self):
        self.sizes = list(self.sizes or DEFAULT_SIZES)
        if any(not isinstance(s, int) or s < 1 for s in self.sizes):
            raise UserError(f"sizes must be model depths >= 1, got {self.sizes}")

    @property
    def results(self) -> str | None:
        """The results root the runs are recorded in (the execution's)."""
        return self.execution.results


def run_points(ctx: Context, sweep: str, points: list[dict], data: str | None = None,
               diverged: bool = False, branch_epochs=()) -> list[RunRow | None]:
    """Run the override sets `points` as the sweep `sweep` under OUT/sweep (done points are skipped) and
    return each point's row from the run store, in order (see `sweep_rows`)."""
    return sweep_rows(sweep, points, data=data or ctx.data, out=str(Path(ctx.out) / sweep), preset=ctx.preset,
                      overrides=ctx.overrides, execution=ctx.execution, retry_failed=ctx.retry_failed,
                      train_fn=ctx.train_fn, log=ctx.log, diverged=diverged, branch_epochs=branch_epochs)


def sweep_rows(sweep: str, points: list[dict], *, data: str, out: str, preset: str = "tiny",
               overrides: dict | None = None, execution: Execution | None = None, retry_failed: bool = False,
               train_fn: Callable | None = None, log: Callable[[str], None] = print,
               diverged: bool = False, branch_epochs=()) -> list[RunRow | None]:
    """Run `points` as one resumable sweep into `out` on the `execution`'s executor (its `pool`; None: in this
    process) and return each point's row from its run store, in order (None where the point failed, or diverged
    unless `diverged` asks for those rows too: status 'diverged', no summary). The execution's `branch` and
    `branch_epochs`: see `SweepSpec`."""
    execution = execution or Execution()
    spec = SweepSpec(name=sweep, data=data, preset=preset, set=dict(overrides or {}), points=points, out=out,
                     results=execution.results or "", branch=execution.branch, branch_epochs=list(branch_epochs))
    report = run_sweep(spec, execution.pool, retry_failed, train_fn=train_fn, log=log)
    store = RunStore(results_root(execution.results))
    try:
        rows = [store.get(p.run_id) for p in report.points]
    finally:
        store.close()
    keep = ("done", "diverged") if diverged else ("done",)
    return [r if r and r.status in keep else None for r in rows]


def point_config(point: dict, *, data: str, preset: str = "tiny", overrides: dict | None = None) -> RunConfig:
    """The resolved config a sweep of `sweep_rows` would train for `point` (the preset, `overrides`, the point, merged
    as the sweep merges them), tagged sweep 'point'."""
    return build_config(preset, data, merge(overrides or {}, point), "point")


def descent_loss(row: RunRow | None, name: str = "select_loss") -> float:
    """A run's loss as a descent sees it: nan for a failed run (unknown: it certifies nothing), +inf for a
    diverged one (its settings do not train: worse than any run that did)."""
    if row is None:
        return float("nan")
    return float("inf") if row.status == "diverged" else metric(row, name)


def metric(row: RunRow | None, name: str = "select_loss") -> float:
    """A run's metric from its summary; +inf for a failed run, so selection never picks it."""
    if row is None or not row.summary:
        return float("inf")
    return float(row.summary.get(name, float("inf")))


def best(rows: list[RunRow | None], name: str = "select_loss") -> RunRow | None:
    done = [r for r in rows if r is not None]
    return min(done, key=lambda r: metric(r, name)) if done else None


def recipe_row(row: RunRow | None) -> dict | None:
    """The part of a run row a recipe's result keeps."""
    if row is None:
        return None
    s = row.summary or {}
    return {"run_id": row.id, "run_dir": row.run_dir, "select_loss": s.get("select_loss"),
            "val_loss": s.get("val_loss"), "params": s.get("params"), "tokens_seen": s.get("tokens_seen"),
            "flops": s.get("flops")}


def run_train_tokens(row: RunRow) -> int:
    """Unique train tokens of the store a run trained on."""
    return open_store(row.config.data).split_tokens("train")
