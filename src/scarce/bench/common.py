"""Small helpers the bench modules share: fit wrappers, estimates and row summaries."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from scarce.errors import UserError
from scarce.progress import Lines, StatusLine
from scarce.runs.store import RunRow

Log = Callable[[str], None]

PROGRESS_EVERY = 30.0
"""Seconds between the progress lines (done/total, rate, ETA) a long phase of the bench writes to its log: the
teachers' generation, evaluations on val windows, downstream scoring. A phase shorter than this writes none."""


def progress_lines(log: Log) -> Lines:
    """A new status line into the bench's log for each long phase (`scarce.progress.Progress`)."""
    return lambda: StatusLine(log, PROGRESS_EVERY)


def identified(fit) -> bool:
    """Whether a fit's asymptote means something: fitted, not at a bound (E = 0, alpha at its limits)."""
    if fit is None or isinstance(fit, Unfitted):
        return False
    return not fit.flags.get("at_bound") and (fit.estimates["E"].value or 0) > 0


def tokens_per_window(row: RunRow) -> int:
    return int(row.config.model.seq_len)


def fmt(d: dict) -> str:
    return ", ".join(f"{k}: {v:.4f}" for k, v in d.items())


def interval_text(e: dict) -> str:
    if not e or e.get("value") is None:
        return "-"
    lo, hi = e.get("low"), e.get("high")
    return f"{e['value']:.3g}x [{'-' if lo is None else f'{lo:.3g}'}, {'inf' if hi is None else f'{hi:.3g}'}]"


def ensemble_json(e: dict) -> dict:
    return {"member_ids": [r.id for r in e["rows"]], "member_val_loss": [m["val_loss"] for m in e["members"]],
            "member_val_bpb": [m["val_bpb"] for m in e["members"]], "prefix_val_loss": e["prefix_val_loss"],
            "prefix_val_bpb": e["prefix_val_bpb"], "member_flops": [r.flops for r in e["rows"]]}


def bench_row(row: RunRow) -> dict:
    return {"run_id": row.id, "val_loss": row.val_loss, "select_loss": row.select_loss, "flops": row.flops}


def recipe_entry(loss: float, bpb: float, flops: float, run_ids: list[str]) -> dict:
    return {"val_loss": loss, "val_bpb": bpb, "flops": flops, "run_ids": run_ids, "efficiency": {}}


def knobs(row: RunRow) -> dict:
    c = row.config
    return {"depth": c.model.depth, "architecture": c.tags.get("stack", "baseline"), "epochs": c.train.epochs,
            "weight_decay": c.optim.weight_decay, "dropout": c.model.dropout, "lr": c.optim.lr, "seed": c.train.seed}


def quietly(fn, *args, **kwargs):
    """Run a fit with its FitWarnings recorded on the Fit (not printed); an `Unfitted` when it cannot be fitted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            return Unfitted(str(e))


@dataclass
class Unfitted:
    """A fit that could not be made (too few points, no frontier): reported with the reason."""

    reason: str
    estimates: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    kind: str = "unfitted"


def estimate(fit, name: str) -> dict:
    if isinstance(fit, Unfitted):
        return {"value": None, "low": None, "high": None, "note": fit.reason}
    return {**fit.to_json_dict()[name], "warnings": list(fit.warnings)}


def fit_json(fit) -> dict:
    if isinstance(fit, Unfitted):
        return {"kind": "unfitted", "reason": fit.reason}
    return {"kind": fit.kind, "estimates": fit.to_json_dict(), "n_points": fit.n_points, "n_boot": fit.n_boot,
            "warnings": list(fit.warnings)}
