"""Tables from the run store for the scaling fits (`scarce fit --csv`), written atomically."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from scarce import atomic
from scarce.atomic import unmakeable
from scarce.errors import UserError
from scarce.rundir import read_metrics
from scarce.runs.store import RunRow

EXPORT_RUN_COLUMNS = ["id", "sweep", "group", "preset", "depth", "params", "non_embedding_params", "train_tokens",
               "tokens_seen", "epochs", "flops", "val_loss", "val_bpb", "select_loss"]
CURVE_COLUMNS = ["id", "params", "tokens", "flops", "select_loss", "val_loss"]


def run_record(row: RunRow) -> dict:
    """A run-store row as one flat record (the runs CSV, the report's run tables): settings from its config,
    metrics from its summary exactly as stored. The one flattening of a row; each table picks its columns."""
    s, cfg = row.summary or {}, row.config
    return {
        "id": row.id, "sweep": row.sweep or "", "group": row.group_id or "", "preset": row.preset or "",
        "stage": row.tags.get("stage", ""), "depth": cfg.model.depth, "params": s.get("params"),
        "non_embedding_params": s.get("non_embedding_params"), "train_tokens": store_train_tokens(cfg.data),
        "tokens_seen": s.get("tokens_seen"), "epochs": s.get("epochs", cfg.train.epochs),
        "lr": cfg.optim.lr, "weight_decay": cfg.optim.weight_decay, "dropout": cfg.model.dropout,
        "seed": cfg.train.seed, "flops": s.get("flops"), "val_loss": s.get("val_loss"),
        "val_bpb": s.get("val_bpb"), "select_loss": s.get("select_loss"), "wall_seconds": row.wall_seconds,
        "run_dir": row.run_dir,
    }


def store_train_tokens(data: str) -> int | None:
    """Unique training tokens (the fixed budget), from the token store's manifest when it is still there."""
    try:
        return int(json.loads((Path(data) / "manifest.json").read_text())["splits"]["train"]["tokens"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def curve_records(row: RunRow) -> list[dict]:
    params = (row.summary or {}).get("params")
    out = []
    keys = ("step", "tokens_seen", "flops", "select_loss", "val_loss")
    for rec in read_metrics(row.run_dir):
        if rec.get("type") == "eval" and all(isinstance(rec.get(k), (int, float)) for k in keys) and rec["step"] > 0:
            out.append({"id": row.id, "params": params, "tokens": rec["tokens_seen"], "flops": rec["flops"],
                        "select_loss": rec["select_loss"], "val_loss": rec["val_loss"]})
    return out


def check_csv_path(path: str) -> None:
    """A UserError unless a CSV file can be written at `path` (not a folder, no file in place of a folder)."""
    if (why := unmakeable(path, file=True)) is not None:
        raise UserError(f"{path} {why}")


def _write(path: str, columns: list[str], records: list[dict]) -> int:
    check_csv_path(path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(records)
    atomic.write_text(path, buf.getvalue())
    return len(records)


def write_runs_csv(rows: list[RunRow], path: str) -> int:
    return _write(path, EXPORT_RUN_COLUMNS, [{c: r[c] for c in EXPORT_RUN_COLUMNS} for r in map(run_record, rows)])


def write_curves_csv(rows: list[dict], path: str) -> int:
    return _write(path, CURVE_COLUMNS, [rec for r in rows for rec in curve_records(r)])
