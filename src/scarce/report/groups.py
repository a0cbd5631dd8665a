"""Which runs a report compares with which: like with like.

A plot of val loss against one swept setting joins only runs that differ in that setting alone (`swept_lines`): the
token store and the bench stage count as settings, so a reference run on 8x the data never sits on the line of the
budget's runs, nor a run of another weight decay. Tables rank a run only against runs on the same token store and of
the same stage (`run_groups`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from scarce.config import NON_SEMANTIC_FIELDS
from scarce.runs.export import store_train_tokens
from scarce.runs.store import RunRow

LABELS = {"data": "store", "tags.stage": "stage"}
"""Short names of the settings that tell lines apart in a legend (others: the last part of the dotted name)."""


def settings(config: dict, prefix: str = "") -> dict[str, str]:
    """A run's settings as {dotted name: JSON text}: every leaf of its config, the token store (`data`) and the bench
    stage (`tags.stage`) included; the execution details (`NON_SEMANTIC_FIELDS`) and the other tags, labels that
    change nothing a run computes, left out."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if name == "tags":
            if isinstance(value, dict) and "stage" in value:
                out["tags.stage"] = json.dumps(value["stage"])
        elif isinstance(value, dict):
            out.update(settings(value, name + "."))
        elif tuple(name.split(".", 1)) not in NON_SEMANTIC_FIELDS:
            out[name] = json.dumps(value, sort_keys=True)
    return out


def swept_value(row: RunRow, field: str) -> float | None:
    """The run's numeric value of `field`, or None where its config has none."""
    value = json.loads(settings(row.config.to_dict()).get(field, "null"))
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else None


def swept_lines(rows: list[RunRow], field: str) -> list[tuple[dict[str, str], list[RunRow]]]:
    """The lines of a plot against `field`: the runs holding a number for it, grouped by every other setting that
    varies among them (`settings`), each line ordered by `field`. A line so joins runs that differ in `field` alone.
    Returns (the settings that tell the line from the others, its runs), the longest lines first."""
    keyed = [(settings(r.config.to_dict()), r) for r in rows if swept_value(r, field) is not None]
    names = {k for s, _ in keyed for k in s} - {field}
    varying = sorted(k for k in names if len({s.get(k) for s, _ in keyed}) > 1)
    lines: dict[tuple, list[RunRow]] = {}
    for s, r in keyed:
        lines.setdefault(tuple(s.get(k) for k in varying), []).append(r)
    out = [(dict(zip(varying, key)), sorted(runs, key=lambda r: swept_value(r, field))) for key, runs in lines.items()]
    return sorted(out, key=lambda line: -len(line[1]))


def store_names(paths: Iterable[str]) -> dict[str, str]:
    """Each token store's path as its last folders, as few as tell the stores apart ('base', or 'seed-1/base' beside
    'seed-2/base')."""
    paths = sorted(set(paths))
    for k in range(1, max((len(Path(p).parts) for p in paths), default=1) + 1):
        names = {p: "/".join(Path(p).parts[-k:]) for p in paths}
        if len(set(names.values())) == len(paths):
            return names
    return {p: p for p in paths}


def line_label(fixed: dict[str, str], names: dict[str, str] | None = None, width: int = 60) -> str:
    """'depth 2, weight_decay 0.4, store train-800, stage standard': what a line holds fixed, cut to `width`; `names`
    the stores' short names (`store_names`)."""
    parts = []
    for name, text in fixed.items():
        value = None if text is None else json.loads(text)
        if name == "data" and isinstance(value, str):
            value = (names or {}).get(value, Path(value).name)
        shown = format(value, "g") if isinstance(value, float) else value
        parts.append(f"{LABELS.get(name, name.rsplit('.', 1)[-1])} {shown}")
    text = ", ".join(parts) or "all runs"
    return text if len(text) <= width else text[:width - 3] + "..."


def run_groups(rows: list[RunRow]) -> dict[tuple[str, str], list[RunRow]]:
    """Runs by (token store, bench stage), each group best on select first; groups by the store's train tokens, then
    its path and the stage. A table ranks a run only within its group."""
    groups: dict[tuple[str, str], list[RunRow]] = {}
    for r in rows:
        groups.setdefault((str(r.config.data), str(r.config.tags.get("stage", ""))), []).append(r)
    order = sorted(groups, key=lambda k: (store_train_tokens(k[0]) or math.inf, k))
    return {k: sorted(groups[k], key=_select) for k in order}


def _select(row: RunRow) -> float:
    return row.select_loss if row.select_loss is not None else math.inf
