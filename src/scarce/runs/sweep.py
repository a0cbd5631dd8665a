"""Sweeps: a declared set of runs that runs, resumes and fans out.

A sweep spec names a token store, a base preset, fixed overrides and the points: a list of explicit
override sets, times a grid (every combination), times a random search (samples drawn with a fixed
seed). Every point is an ordinary run whose id is the hash of its resolved config (with the sweep
name in `tags.sweep`), so the run store already knows which points are done: they are skipped, and
a killed sweep resumes where it stopped (a point killed mid-run resumes from its last checkpoint).
A failed point is recorded with its error and retried only when asked (`retry_failed`).

A spec is TOML (`scarce sweep sweep.toml`) or a Python function returning the same object as a dict
or a `SweepSpec` (`scarce sweep path/to/file.py:make` or `package.module:make`):

    name = "lr-wd"
    data = "stores/stdlib"
    preset = "tiny"
    [set]                       # applied to every point
    "train.epochs" = 4
    [grid]                      # every combination
    "optim.lr" = [1e-3, 3e-3]
    "optim.weight_decay" = [0.1, 0.8]
    [search]                    # optional: `samples` random draws per grid point
    samples = 4
    seed = 0
    [search.space]
    "model.dropout" = [0.0, 0.1]                       # a choice
    "optim.lr" = { min = 1e-4, max = 1e-2, log = true } # a range
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scarce.config import RunConfig, apply_overrides, get_preset
from scarce.errors import UserError
from scarce.progress import format_seconds, progress_bar
from scarce.runs import branch
from scarce.runs.executors import LocalExecutor
from scarce.runs.launch import Job, resolved_id, run_jobs
from scarce.runs.store import RunStore, results_root

HORIZONS = ("train.epochs", "train.tokens", "train.tokens_per_param")
INTERRUPTED = ("KeyboardInterrupt", "SystemExit")  # a failure of these kinds is a kill: resume it


@dataclass
class SweepSpec:
    name: str
    """Sweep name: stored in each run's tags.sweep (and the run store's sweep column)."""
    data: str
    """Token store every point trains on (a point may override it with a `data` key)."""
    preset: str = "tiny"
    """Base preset of every point."""
    set: dict = field(default_factory=dict)
    """Overrides applied to every point, `section.field -> value` (nested tables are flattened)."""
    points: list = field(default_factory=list)
    """Explicit override sets; the grid and the search multiply each of them (none: one empty set)."""
    grid: dict = field(default_factory=dict)
    """`section.field -> list of values`: every combination becomes a point."""
    search: dict = field(default_factory=dict)
    """Random search: {samples, seed, space: {field: [choices] | {min, max, log}}}."""
    out: str = ""
    """Folder of the run directories (one per run id); default <results>/sweeps/<name>."""
    results: str = ""
    """Results root holding the run store; default $SCARCE_RESULTS or ./scarce-results."""
    branch: bool = True
    """Points of one setting that differ only in their horizon share their stable phase where the schedule allows
    (`scarce.runs.branch`; on CPU the results are bit-identical either way); false trains every point from 0."""
    branch_epochs: list = field(default_factory=list)
    """Epoch counts a later sweep of these settings may train (a search's epoch axis): each point also keeps a
    checkpoint at the decay start of every one shorter than its own, so such a run trains only its decay."""

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise UserError("sweep spec: `name` is required (a string)")
        if not self.data:
            raise UserError(f"sweep {self.name}: `data` is required (a token store made by `scarce prepare`)")
        for key in ("data", "preset", "out", "results"):
            if not isinstance(getattr(self, key), str):
                raise UserError(f"sweep {self.name}: `{key}` must be a string, got {getattr(self, key)!r}")
        if not isinstance(self.branch, bool):  # a string "false" is truthy: it would branch
            raise UserError(f"sweep {self.name}: `branch` must be true or false, got {self.branch!r}")
        for key in ("set", "grid", "search"):
            if not isinstance(getattr(self, key), dict):
                raise UserError(f"sweep {self.name}: `{key}` must be a table")
        self.set = flatten(self.set)
        self.grid = flatten(self.grid)
        for name, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise UserError(f"sweep {self.name}: grid field {name} must be a non-empty list")
        if not isinstance(self.points, list) or not all(isinstance(p, dict) for p in self.points):
            raise UserError(f"sweep {self.name}: `points` must be a list of tables")
        self.points = [flatten(p) for p in self.points]
        seed = self.search.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise UserError(f"sweep {self.name}: [search] seed must be a whole number, got {seed!r}")
        epochs = self.branch_epochs
        if not isinstance(epochs, (list, tuple)) or not all(
                isinstance(e, (int, float)) and not isinstance(e, bool) and e > 0 for e in epochs):
            raise UserError(f"sweep {self.name}: `branch_epochs` must be a list of epoch counts > 0, got {epochs!r}")

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        if not isinstance(d, dict):
            raise UserError(f"sweep spec: expected a table (a dict), got {type(d).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"sweep spec: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**{"name": "", "data": "", **d})  # a missing name or data gets its own error


def flatten(d: dict, prefix: str = "") -> dict:
    """{"model": {"depth": 2}} -> {"model.depth": 2}; dotted keys pass through; {min,max} ranges stay."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and not {"min", "max"} & set(value):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_spec(source: str | dict | SweepSpec) -> SweepSpec:
    """A spec from a TOML file, `file.py:function`, `module:function`, a dict or a SweepSpec."""
    if isinstance(source, SweepSpec):
        return source
    if isinstance(source, dict):
        return SweepSpec.from_dict(source)
    if str(source).endswith(".toml"):
        return SweepSpec.from_dict(_read_toml(Path(source)))
    if ":" in str(source):
        made = _load_function(str(source))()
        if not isinstance(made, (SweepSpec, dict)):
            raise UserError(f"sweep spec {source}: the function returned {type(made).__name__}, not a dict or "
                            "a SweepSpec")
        return made if isinstance(made, SweepSpec) else SweepSpec.from_dict(made)
    raise UserError(f"sweep spec {source!r}: give a .toml file or a Python function as file.py:name or module:name")


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise UserError(f"cannot read sweep spec {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"sweep spec {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"sweep spec {path} is not valid TOML ({e})") from None


def _load_function(ref: str) -> Callable:
    target, _, name = ref.rpartition(":")
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        if spec is None or not Path(target).exists():
            raise UserError(f"sweep spec {ref}: no file {target}")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except SyntaxError as e:
            raise UserError(f"sweep spec {ref}: {target} line {e.lineno}: {e.msg}") from None
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError:
            raise UserError(f"sweep spec {ref}: no module {target}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UserError(f"sweep spec {ref}: {target} has no function {name}")
    return fn


# -- points ---------------------------------------------------------------------------------------

@dataclass
class Point:
    overrides: dict
    config: RunConfig
    run_id: str
    run_dir: Path
    fingerprint: str = ""


def point_overrides(spec: SweepSpec) -> list[dict]:
    """Every point's overrides (spec.set, then the explicit point, grid, search), in a fixed order."""
    names = list(spec.grid)
    grid = [dict(zip(names, values)) for values in itertools.product(*spec.grid.values())]
    rng = random.Random(spec.search.get("seed", 0))
    out = []
    for base in spec.points or [{}]:
        for g in grid:
            for s in _search_samples(spec, rng):
                out.append(merge(spec.set, base, g, s))
    return out


def merge(*layers: dict) -> dict:
    """Later layers win; a layer that sets a horizon also clears the horizons set by earlier ones."""
    out: dict = {}
    for layer in layers:
        if any(k in layer for k in HORIZONS):
            out = {k: v for k, v in out.items() if k not in HORIZONS}
        out.update(layer)
    return out


def _search_samples(spec: SweepSpec, rng: random.Random) -> list[dict]:
    if not spec.search:
        return [{}]
    space = flatten(spec.search.get("space", {}))
    n = spec.search.get("samples", 0)
    if not space or not isinstance(n, int) or n < 1:
        raise UserError(f"sweep {spec.name}: [search] needs samples >= 1 and a [search.space] table")
    return [{k: _draw(k, v, rng) for k, v in space.items()} for _ in range(n)]


def _draw(name: str, dim, rng: random.Random):
    if isinstance(dim, list) and dim:
        return rng.choice(dim)
    if isinstance(dim, dict) and "min" in dim and "max" in dim:
        lo, hi = dim["min"], dim["max"]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi))
        if not numbers or lo > hi or (dim.get("log") and lo <= 0):
            raise UserError(f"search field {name}: min and max must be finite numbers with min <= max "
                            f"(and > 0 with log = true), got min={lo!r}, max={hi!r}")
        if dim.get("log"):
            return math.exp(rng.uniform(math.log(lo), math.log(hi)))
        value = rng.uniform(lo, hi)
        return round(value) if isinstance(lo, int) and isinstance(hi, int) else value
    raise UserError(f"search field {name}: give a list of choices or {{min, max, log}}")


def check_horizon(overrides: dict, where: str) -> None:
    """Horizon fields given explicitly must set a horizon, as the --epochs/--tokens/--tokens-per-param flags must:
    with every one of them 0, the preset's own horizon (tokens_per_param_default) would train in silence."""
    given = {k: v for k, v in overrides.items() if k in HORIZONS}
    numbers = [v for v in given.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if given and len(numbers) == len(given) and not any(0 < v < math.inf for v in numbers):
        shown = ", ".join(f"{k}={v}" for k, v in given.items())
        raise UserError(f"{where} {shown} sets no horizon: give a finite number > 0 (as --epochs, --tokens and "
                        "--tokens-per-param must be), or leave the horizon fields out for the preset's")


def build_config(preset: str, data: str, overrides: dict, sweep: str) -> RunConfig:
    """The resolved config of one point, for sweeps and recipes alike: `preset`, then `overrides` (a `data` key
    replaces `data`; `tags.*` keys become tags; setting one horizon clears the preset's other horizons), tagged with
    the `sweep` that trains it (a tag, so part of the run id)."""
    overrides = dict(overrides)
    data = overrides.pop("data", data)
    tags = {k[5:]: overrides.pop(k) for k in [k for k in overrides if k.startswith("tags.")]}
    check_horizon(overrides, f"sweep {sweep}:")
    if any(k in overrides for k in HORIZONS):
        overrides = {**{k: 0 for k in HORIZONS}, **overrides}
    cfg = apply_overrides(get_preset(preset), overrides, flag=f"sweep {sweep}:")
    cfg.tags = {**cfg.tags, **tags, "sweep": sweep}
    cfg.data = str(Path(data).resolve())
    return cfg


def resolve_points(spec: SweepSpec) -> list[Point]:
    out_dir = Path(spec.out) if spec.out else results_root(spec.results or None) / "sweeps" / spec.name
    points, seen = [], set()
    for overrides in point_overrides(spec):
        cfg = build_config(spec.preset, spec.data, overrides, spec.name)
        cfg, run_id, fingerprint = resolved_id(cfg)  # the one resolution of the point
        if run_id in seen:  # e.g. a search drawing the same choices twice
            continue
        seen.add(run_id)
        points.append(Point(overrides, cfg, run_id, out_dir / run_id, fingerprint))
    return points


# -- the sweep --------------------------------------------------------------------------------------

@dataclass
class SweepReport:
    name: str
    points: list[Point]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """Points that are failed after this call: newly failed, and earlier failures not retried."""
    diverged: list[str] = field(default_factory=list)
    """Points whose training diverged: a result of their settings (an LR too high), not a crash."""

    @property
    def complete(self) -> bool:
        return not self.failed


def run_sweep(spec, executor=None, retry_failed: bool = False, results: str | None = None,
              train_fn: Callable | None = None, log: Callable[[str], None] = print) -> SweepReport:
    """Run every point of `spec` that is not done yet; see the module docstring.

    `executor` comes from `scarce.runs.executors.make_executor` (default: local). `train_fn(cfg,
    run_dir, results) -> summary` replaces the trainer (tests, synthetic objectives); with a process
    or Ray executor it must be a module-level function.
    """
    spec = load_spec(spec)
    if results:
        spec.results = results
    executor = executor or LocalExecutor()
    points = resolve_points(spec)
    results_dir = str(results_root(spec.results or None).resolve())
    report = SweepReport(spec.name, points)
    todo = _pending(points, RunStore(results_dir), retry_failed, report)
    log(f"sweep {spec.name}: {len(points)} points, {len(report.skipped)} done, {len(report.failed)} failed and "
        f"{len(report.diverged)} diverged (not retried), {len(todo)} to run on {executor.name} ({executor.threads} thread(s) each)")
    progress = Progress(len(todo), log, spec.set)

    def finished(i: int, result: dict) -> None:
        lists = {"done": report.ran, "diverged": report.diverged}
        lists.get(result["status"], report.failed).append(todo[i].run_id)
        progress.finished(todo[i], result)

    if train_fn is not None or not spec.branch:  # a replaced trainer has no checkpoints to branch from
        run_jobs([Job(p.config, p.run_dir, p.run_id, p.fingerprint) for p in todo], executor, results_dir, True,
                 train_fn, finished)
        return report
    index = {id(p): i for i, p in enumerate(points)}
    first, second = branch.phases([(p.config, p.fingerprint, p.run_dir) for p in points],
                                  [index[id(p)] for p in todo], RunStore(results_dir), spec.branch_epochs)
    at = {index[id(p)]: k for k, p in enumerate(todo)}  # a point's place in `todo`
    for phase in (first, second):
        jobs = [(i, Job(cfg, points[i].run_dir, points[i].run_id, points[i].fingerprint, start))
                for i, cfg, start in phase()]
        run_jobs([job for _, job in jobs], executor, results_dir, True, None,
                 lambda k, r, jobs=jobs: finished(at[jobs[k][0]], r))
    return report


def _pending(points: list[Point], store: RunStore, retry_failed: bool, report: SweepReport) -> list[Point]:
    todo = []
    for p in points:
        row = store.get(p.run_id)
        status = row["status"] if row else None
        if status == "done":
            report.skipped.append(p.run_id)
        elif status in ("failed", "diverged") and not (row["error"] or "").startswith(INTERRUPTED):
            if retry_failed:
                shutil.rmtree(p.run_dir, ignore_errors=True)  # start the point afresh
                todo.append(p)
            else:
                (report.diverged if status == "diverged" else report.failed).append(p.run_id)
        else:  # new, killed ('running' with no process) or interrupted: (re)start or resume
            todo.append(p)
    store.close()
    return todo


class Progress:
    """One line per finished point, with an overall bar and the ETA of the sweep."""

    def __init__(self, total: int, log: Callable[[str], None], fixed: dict):
        self.total, self.log, self.fixed, self.n, self.t0 = total, log, fixed, 0, time.perf_counter()

    def finished(self, point: Point, result: dict) -> None:
        self.n += 1
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.n * (self.total - self.n)
        varying = {k: v for k, v in point.overrides.items() if k not in self.fixed or self.fixed[k] != v}
        what = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in varying.items())
        if result["status"] == "done":
            outcome = f"done select {result['summary'].get('select_loss', float('nan')):.4f}"
        elif result["status"] == "diverged":
            outcome = "DIVERGED (a result: the settings do not train) " + result["error"].splitlines()[0][:100]
        else:
            outcome = "FAILED " + result["error"].splitlines()[0][:120]
        self.log(f"{progress_bar(self.n / self.total)} {self.n}/{self.total} {point.run_id} {what} | {outcome} "
                 f"in {result.get('seconds', 0):.1f}s | ETA {format_seconds(eta)}")
