"""The run store: one SQLite row per run, finished or failed, in a results root.

The row is keyed by the run id (the hash of the run's resolved config), so a sweep can ask whether
a point is already done. It holds the config, status, key metrics, paths, timings, the git commit
and package versions. Several processes may write at once (SQLite's own locking, WAL journal).
"""

from __future__ import annotations

import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from importlib import metadata
from pathlib import Path

from scarce import __version__
from scarce.atomic import unmakeable
from scarce.config import RunConfig
from scarce.errors import UserError

STATUSES = ("running", "done", "failed", "diverged", "interrupted")
"""A run's status in the store: `running` also covers a run whose process was killed (SIGKILL, power)."""

DEFAULT_ROOT = "scarce-results"
METRIC_COLUMNS = ("val_loss", "val_bpb", "select_loss", "params", "tokens_seen", "flops", "wall_seconds")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    preset TEXT,
    sweep TEXT,
    group_id TEXT,
    data TEXT,
    config TEXT NOT NULL,
    summary TEXT,
    val_loss REAL, val_bpb REAL, select_loss REAL, params INTEGER, tokens_seen INTEGER,
    flops REAL, wall_seconds REAL,
    started_at REAL, finished_at REAL,
    git_commit TEXT, versions TEXT, error TEXT,
    PRIMARY KEY (id, run_dir)
)
"""
"""A row per run folder: the same run (same config and data) trained in two folders is two rows of one id,
so neither disappears from `scarce runs`. Stores made before keyed rows by id alone; `_setup` moves them."""

EVALS_SCHEMA = """
CREATE TABLE IF NOT EXISTS evals (
    folder TEXT NOT NULL,
    tasks TEXT NOT NULL,
    item_limit INTEGER NOT NULL,
    record TEXT NOT NULL,
    core REAL,
    results TEXT NOT NULL,
    created_at REAL,
    PRIMARY KEY (folder, tasks, item_limit)
)
"""
"""Downstream evaluations (`scarce eval`) of a run or ensemble folder: the latest per (folder, tasks, limit;
0 = all items), with the path of its JSON record and its results (task -> metrics)."""


@dataclass
class RunRow:
    """One run of the run store: a folder that trained (or is training) one config."""

    id: str
    """The run id: the hash of the resolved config."""
    status: str
    """One of STATUSES."""
    run_dir: str
    config: RunConfig
    """The resolved config, typed (stored as `RunConfig.to_dict()` JSON; a dict given here is parsed)."""
    summary: dict | None = None
    """summary.json of a done run; None before."""
    preset: str | None = None
    sweep: str | None = None
    group_id: str | None = None
    """The ensemble a member belongs to (tags.group)."""
    data: str | None = None
    val_loss: float | None = None
    val_bpb: float | None = None
    select_loss: float | None = None
    params: int | None = None
    tokens_seen: int | None = None
    flops: float | None = None
    wall_seconds: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    git_commit: str | None = None
    versions: dict | None = None
    error: str | None = None

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> RunRow:
        """The row, or a ValueError saying which column is damaged (edited by hand, written by another program)."""
        d = dict(row)
        for key in ("config", "summary", "versions"):
            try:
                d[key] = json.loads(d[key]) if d.get(key) else None
            except (TypeError, ValueError):
                raise ValueError(f"its {key} is not JSON") from None
            if not isinstance(d[key], dict) and (key == "config" or d[key] is not None):
                raise ValueError(f"its {key} is not a JSON object")
        try:
            d["config"] = RunConfig.from_dict(d["config"])
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"its config is not a run config ({e})") from None
        for key in ("id", "status", "run_dir"):
            if not isinstance(d.get(key), str):
                raise ValueError(f"its {key} is {d.get(key)!r}, not text")
        for key in (*METRIC_COLUMNS, "started_at", "finished_at"):
            if d.get(key) is not None and (not isinstance(d[key], (int, float)) or isinstance(d[key], bool)):
                raise ValueError(f"its {key} is {d[key]!r}, not a number")
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})

    @classmethod
    def of_folder(cls, run_dir: str | os.PathLike, config: dict, summary: dict) -> RunRow:
        """The row a finished run folder would have in a store (for folders read without one)."""
        return cls(id=summary["run_id"], status="done", run_dir=str(run_dir), config=config, summary=summary,
                   **{c: summary.get(c) for c in METRIC_COLUMNS})

    def __post_init__(self):
        if isinstance(self.config, dict):
            self.config = RunConfig.from_dict(self.config)

    @property
    def tags(self) -> dict:
        return self.config.tags

    def as_dict(self) -> dict:
        """The row as plain JSON-able data (`scarce runs --json`), its config as stored."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"config": self.config.to_dict()}

    def __getitem__(self, key: str):
        """Field access by name, as rows were read before they were typed (scripts under benchmarks/ and tests; the
        library reads attributes)."""
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default=None):
        return getattr(self, key, default)


def results_root(root: str | os.PathLike | None = None) -> Path:
    """The results root: the argument, else $SCARCE_RESULTS, else ./scarce-results."""
    return Path(root or os.environ.get("SCARCE_RESULTS") or DEFAULT_ROOT)


def check_results_root(root: str | os.PathLike | None = None) -> Path:
    """The results root, checked without creating anything: a UserError now when a file stands where it
    or a folder above it should be, instead of after hours of work that could not be recorded."""
    path = results_root(root)
    if (why := unmakeable(path)) is not None:
        raise UserError(f"cannot open the run store in {path}: the folder {why}")
    if (path / "runs.db").is_dir():
        raise UserError(f"cannot open the run store in {path}: {path / 'runs.db'} is a folder")
    return path


class RunStore:
    def __init__(self, root: str | os.PathLike | None = None, read_only: bool = False):
        """The run store of a results root, made when absent; `read_only`: an existing store opened for reading
        alone (nothing is written, not even the schema: a reader of a database another program made leaves it as
        it was; opened read-write all the same, so SQLite removes its WAL files again on close)."""
        self.root = results_root(root)
        self.path = self.root / "runs.db"
        try:
            if read_only:
                self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True, timeout=60)
                _check_ours(self.db, self.path)
            else:
                self.root.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=60)
                _check_ours(self.db, self.path)  # before _setup writes anything into it
                _setup(self.db)
        except OSError as e:
            why = unmakeable(self.root)
            raise UserError(f"cannot open the run store in {self.root}: "
                            f"{f'the folder {why}' if why else e}") from None
        except sqlite3.DatabaseError as e:
            raise UserError(f"cannot open the run store in {self.root}: {e}") from None
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    def start(self, run_id: str, config: dict, run_dir: str | os.PathLike, data: str = "") -> None:
        tags = config.get("tags", {})
        self.db.execute(
            "INSERT OR REPLACE INTO runs (id, status, run_dir, preset, sweep, group_id, data, config, started_at,"
            " git_commit, versions) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, str(Path(run_dir).resolve()), config.get("preset", ""), tags.get("sweep"), tags.get("group"),
             data, json.dumps(config, sort_keys=True), time.time(), git_commit(), json.dumps(versions())),
        )
        self.db.commit()

    def finish(self, run_id: str, summary: dict, run_dir: str | os.PathLike) -> None:
        values = [summary.get(c) for c in METRIC_COLUMNS]
        self.db.execute(
            f"UPDATE runs SET status='done', summary=?, finished_at=?, error=NULL, "
            f"{', '.join(c + '=?' for c in METRIC_COLUMNS)} WHERE id=? AND run_dir=?",
            (json.dumps(summary, sort_keys=True), time.time(), *values, run_id, str(Path(run_dir).resolve())),
        )
        self.db.commit()

    def fail(self, run_id: str, error: str, run_dir: str | os.PathLike, status: str = "failed") -> None:
        """Mark a run `failed`, `diverged` (a result of its settings, such as an LR too high) or `interrupted`
        (stopped by a signal; resumed as it is)."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self.db.execute("UPDATE runs SET status=?, error=?, finished_at=? WHERE id=? AND run_dir=?",
                        (status, error, time.time(), run_id, str(Path(run_dir).resolve())))
        self.db.commit()

    def get(self, run_id: str, run_dir: str | os.PathLike | None = None) -> RunRow | None:
        """The row of `run_id` in `run_dir`; without a folder, the run's best row: a done one if any (the
        latest finished), else the latest started."""
        if run_dir is not None:
            row = self.db.execute("SELECT * FROM runs WHERE id=? AND run_dir=?",
                                  (run_id, str(Path(run_dir).resolve()))).fetchone()
        else:
            row = self.db.execute("SELECT * FROM runs WHERE id=? ORDER BY status='done' DESC, finished_at DESC, "
                                  "started_at DESC LIMIT 1", (run_id,)).fetchone()
        if not row:
            return None
        try:
            return RunRow.from_sql(row)
        except ValueError as e:
            raise UserError(f"the row of run {row['id']} in {self.path} is damaged ({e}); remove it "
                            "(sqlite3 ... DELETE FROM runs WHERE id=...) or train the run again") from None

    def record_eval(self, folder: str | os.PathLike, tasks: list[str], limit: int | None, record: str | os.PathLike,
                    report: dict) -> None:
        """Record a downstream evaluation of a run or ensemble folder (replacing an earlier one of the same
        tasks and limit); non-finite metrics are stored as null."""
        core = (report.get("core") or {}).get("score")
        self.db.execute(
            "INSERT OR REPLACE INTO evals (folder, tasks, item_limit, record, core, results, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (str(Path(folder).resolve()), ",".join(tasks), limit or 0, str(Path(record).resolve()),
             core if isinstance(core, (int, float)) and math.isfinite(core) else None,
             json.dumps(_finite(report.get("results", {})), sort_keys=True, allow_nan=False), time.time()))
        self.db.commit()

    def evals(self, folder: str | os.PathLike | None = None) -> list[dict]:
        """Recorded downstream evaluations, of one folder or all, oldest first."""
        sql, args = "SELECT * FROM evals", []
        if folder is not None:
            sql, args = sql + " WHERE folder=?", [str(Path(folder).resolve())]
        rows = [dict(r) for r in self._select(sql + " ORDER BY created_at", args)]
        for r in rows:
            r["tasks"], r["results"] = r["tasks"].split(","), json.loads(r["results"])
        return rows

    def list(self, sweep: str | None = None, status: str | None = None, group: str | None = None,
             where: dict | None = None) -> list[RunRow]:
        """Rows in start order, filtered by sweep, status, ensemble group and config fields
        (`where={"model.depth": 4}` matches the resolved config)."""
        sql, args = "SELECT * FROM runs WHERE 1=1", []
        for column, value in (("sweep", sweep), ("status", status), ("group_id", group)):
            if value is not None:
                sql += f" AND {column}=?"
                args.append(value)
        rows, damaged = [], []
        for r in self._select(sql + " ORDER BY started_at", args):
            try:
                rows.append(RunRow.from_sql(r))
            except ValueError as e:
                damaged.append(f"run {r['id']!r}: {e}")
        if damaged:
            print(f"warning: skipped {len(damaged)} damaged row(s) of {self.path} (first, {damaged[0]})",
                  file=sys.stderr)
        return [r for r in rows if _matches(r.config.to_dict(), where or {})] if where else rows

    def _select(self, sql: str, args: list) -> list[sqlite3.Row]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):  # a read-only store made empty, by nobody yet
                return []
            raise UserError(f"cannot read the run store {self.path}: {e}") from None


OURS = {"runs", "evals", "runs_by_id"}
"""The tables a run store holds (runs_by_id: for a moment while rows of the earlier schema are moved)."""


def _check_ours(db: sqlite3.Connection, path: Path) -> None:
    """A UserError, before anything is written, when the database is not a run store: it holds tables of its own,
    or a `runs` table without a run store's columns (another program's database named runs.db)."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
              if not name.startswith("sqlite_")}
    columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    ours = {f.name for f in fields(RunRow)}  # the columns of SCHEMA
    foreign = sorted(tables - OURS)
    if foreign or ("runs" in tables and not ours <= columns):
        what = f"tables of its own ({', '.join(foreign[:3])})" if foreign else \
            f"a runs table without the run store's columns (it lacks {', '.join(sorted(ours - columns)[:3])})"
        db.close()
        raise UserError(f"{path} is not a scarce run store: it holds {what}; it was left as it was; give "
                        "--results a folder of its own")


def _setup(db: sqlite3.Connection, patience: float = 60.0) -> None:
    """Switch to WAL and create the table. Switching the journal mode takes the database's exclusive
    lock and SQLite does not wait on it (SQLITE_BUSY at once when several workers open a new store
    together), so a busy database is retried here until `patience` seconds have passed."""
    deadline = time.monotonic() + patience
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)
            db.execute(EVALS_SCHEMA)
            _key_rows_by_folder(db)
            db.commit()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05 + 0.1 * random.random())


def _key_rows_by_folder(db: sqlite3.Connection) -> None:
    """Move a store of the earlier schema (rows keyed by id alone) to rows keyed by (id, run_dir)."""
    keys = [r[1] for r in db.execute("PRAGMA table_info(runs)") if r[5]]
    if keys != ["id"]:
        return
    db.execute("BEGIN IMMEDIATE")
    if [r[1] for r in db.execute("PRAGMA table_info(runs)") if r[5]] == ["id"]:  # not moved meanwhile
        db.execute("ALTER TABLE runs RENAME TO runs_by_id")
        db.execute(SCHEMA)
        db.execute("INSERT INTO runs SELECT * FROM runs_by_id")
        db.execute("DROP TABLE runs_by_id")
    db.commit()


def _finite(obj):
    """`obj` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _matches(config: dict, where: dict) -> bool:
    for key, want in where.items():
        value = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value != want and str(value) != str(want):
            return False
    return True


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict:
    return {"scarce": __version__, "torch": metadata.version("torch"), "numpy": metadata.version("numpy")}
