"""The crossing check: within a family trained with a correct setup, the val-loss curve of a larger
model never lies above a smaller one's at equal tokens. A crossing usually means a bad setup (an LR
too high for the larger model, a broken init or schedule), not a finding.

Within each family (one sweep on one token store), each model size is represented by its run best on
select; each pair (smaller, larger) is compared at the larger run's eval points inside the smaller
run's token range, with the smaller curve interpolated linearly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scarce.rundir import read_metrics
from scarce.runs.store import RunRow


def val_curve(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(tokens_seen, val_loss) of a run's eval records, in step order."""
    evals = sorted((r["tokens_seen"], r["val_loss"]) for r in read_metrics(run_dir)
                   if r.get("type") == "eval" and _numbers(r, "tokens_seen", "val_loss"))
    return np.array([t for t, _ in evals], float), np.array([v for _, v in evals], float)


def _numbers(record: dict, *keys: str) -> bool:
    return all(isinstance(record.get(k), (int, float)) for k in keys)


def representatives(rows: list[RunRow]) -> dict[tuple[str, int], RunRow]:
    """Per family (sweep and token store) and size (params): the done run best on select."""
    chosen: dict[tuple[str, int], RunRow] = {}
    for r in rows:
        if r.status != "done" or not r.params:
            continue
        key = (f"{r.sweep or ''} {r.data or ''}".strip(), int(r.params))
        if key not in chosen or (r.select_loss or np.inf) < (chosen[key].select_loss or np.inf):
            chosen[key] = r
    return chosen


def find_crossings(rows: list[RunRow], tol: float = 0.0) -> list[dict]:
    """Pairs (smaller, larger) of one family where the larger model's val loss exceeds the smaller's by
    more than `tol` nats at equal tokens; with the first such token count and the largest excess."""
    reps = representatives(rows)
    out = []
    for name in sorted({s for s, _ in reps}):
        family = sorted(((p, r) for (s, p), r in reps.items() if s == name), key=lambda pr: pr[0])
        curves = {p: val_curve(r.run_dir) for p, r in family}
        for i, (p_small, small) in enumerate(family):
            for p_large, large in family[i + 1:]:
                crossing = _crossing(curves[p_small], curves[p_large], tol)
                if crossing:
                    out.append({"family": name, "smaller": small.id, "larger": large.id,
                                "smaller_params": p_small, "larger_params": p_large, **crossing})
    return out


def _crossing(small: tuple[np.ndarray, np.ndarray], large: tuple[np.ndarray, np.ndarray], tol: float) -> dict | None:
    (ts, ls), (tl, ll) = small, large
    if len(ts) == 0 or len(tl) == 0:
        return None
    inside = (tl >= ts[0]) & (tl <= ts[-1])
    excess = ll[inside] - np.interp(tl[inside], ts, ls)
    bad = excess > tol
    if not bad.any():
        return None
    return {"tokens": float(tl[inside][bad][0]), "excess": float(excess.max())}
