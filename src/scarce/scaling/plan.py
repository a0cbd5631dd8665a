"""Compute-optimal planning from a fitted L(N, D) = E + A/N^alpha + B/D^beta: what to train, and how long.

For a compute budget C the plan is the Chinchilla allocation N_opt(C), D_opt(C) = C/(6·N_opt) and
its predicted loss; for a target loss it is the least compute whose optimal run reaches it. Wall
time is C / (hardware FLOP/s x MFU). When the law comes with bootstrap draws, every column gets a
percentile interval by planning once per draw -- the plan inherits the fit's uncertainty, which far
from the fitted compute range is large.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from scarce.errors import UserError
from scarce.scaling.chinchilla import compute_optimal, flops_for_loss, optimal_loss
from scarce.scaling.laws import LEVEL, Estimate, Fit, quantiles

LAW_PARAMS = ("E", "A", "B", "alpha", "beta")
COLUMNS = ("params", "tokens", "tokens_per_param", "flops", "loss", "hours", "dollars")


@dataclass
class PlanRow:
    """One planned run; each column is an Estimate (interval nan when the law has no draws)."""

    label: str
    """What was asked, e.g. 'C=1e+21' or 'L=2.1'."""
    columns: dict[str, Estimate]


def _law_arrays(law: Fit | dict) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Point values and bootstrap draws of E, A, B, alpha, beta from a Fit or a plain dict of numbers."""
    if isinstance(law, Fit):
        point = {k: law.value(k) for k in LAW_PARAMS}
        draws = {k: law.draws[k] for k in LAW_PARAMS} if all(k in law.draws for k in LAW_PARAMS) else {}
        return point, draws
    missing = [k for k in LAW_PARAMS if k not in law]
    if missing:
        raise UserError(f"the law lacks {', '.join(missing)} (need E, A, B, alpha, beta)")
    return {k: float(law[k]) for k in LAW_PARAMS}, {}


def _columns(flops, p: dict, flops_per_s: float | None, mfu: float,
             price: float | None = None) -> dict[str, np.ndarray]:
    """The plan's numbers for compute `flops` under law parameters p (arrays broadcast together)."""
    with np.errstate(invalid="ignore"):  # an unreachable target has infinite compute: inf/inf
        n, d = compute_optimal(flops, p["A"], p["B"], p["alpha"], p["beta"])
        cols = {"params": n, "tokens": d, "tokens_per_param": d / n, "flops": np.broadcast_to(flops, n.shape),
                "loss": optimal_loss(flops, *(p[k] for k in LAW_PARAMS))}
    if flops_per_s:
        cols["hours"] = device_hours(cols["flops"], flops_per_s, mfu)
        if price:
            cols["dollars"] = cols["hours"] * price
    return cols


def check_device(flops_per_s: float | None, mfu: float, price: float | None = None) -> None:
    """A one-line error for a device's peak, MFU or price per device-hour out of range."""
    if flops_per_s is not None and not 0 < flops_per_s < np.inf:
        raise UserError(f"flops_per_s must be a positive finite number, got {flops_per_s}")
    if not 0 < mfu <= 1:
        raise UserError(f"MFU must be in (0, 1], got {mfu}")
    if price is not None and not 0 < price < np.inf:
        raise UserError(f"the price per device-hour must be a positive finite number, got {price}")
    if price is not None and flops_per_s is None:
        raise UserError("a price needs the device's FLOP/s (--gpu NAME or --flops-per-s) to turn FLOPs into hours")


def device_hours(flops, flops_per_s: float, mfu: float):
    """Hours of one device of peak `flops_per_s` running at `mfu` to do `flops` (the cost in device-hours on any
    number of them)."""
    return flops / (flops_per_s * mfu) / 3600.0


@dataclass
class CoreMap:
    """A downstream score as a straight line in val loss, CORE = a + b·loss, fitted to runs that measured both
    (a miniseries evaluated with `scarce eval core`): how a target CORE becomes a target loss to plan for.
    Over the range of a miniseries CORE falls about linearly with loss; outside that range the line is an
    extrapolation, and the plan says so."""

    a: float
    b: float
    a_draws: np.ndarray
    """Bootstrap draws of the intercept (rows resampled with replacement); empty without a bootstrap."""
    b_draws: np.ndarray
    core_range: tuple[float, float]
    """The lowest and highest CORE among the runs the line was fitted to."""

    def loss_for(self, core: float, draws: bool = False):
        """The val loss at which the line reaches `core` (per draw when `draws`)."""
        a, b = (self.a_draws, self.b_draws) if draws else (self.a, self.b)
        return (core - a) / b


FLAT = 1e-9
"""A CORE map whose line changes CORE by less than this (relative) across its runs is flat: CORE does not move."""
LEVEL_SLOPE = 0.95
"""The one-sided level at which a CORE map's slope must be below 0 (Student's t over the runs' residuals)."""


def fit_core_map(loss, core, n_boot: int = 1000, seed: int = 0) -> CoreMap:
    """Least-squares CORE = a + b·loss over paired (loss, CORE) rows, with a pairs bootstrap for intervals.
    A one-line error when the rows cannot give a falling line (fewer than 3, or CORE not falling with loss)."""
    loss, core = np.asarray(loss, dtype=float), np.asarray(core, dtype=float)
    if loss.size < 3 or np.ptp(loss) == 0:
        raise UserError(f"a CORE map needs at least 3 runs of different val loss, got {loss.size}")
    if not (np.all(np.isfinite(loss)) and np.all(np.isfinite(core))):
        raise UserError("the CORE map's loss and core columns must be finite numbers")
    b, a = np.polyfit(loss, core, 1)
    if abs(b) * np.ptp(loss) <= FLAT * max(1.0, float(np.abs(core).max())):  # a slope of rounding residue alone
        raise UserError(f"CORE does not move with val loss in these runs (it changes by {abs(b) * np.ptp(loss):.3g} "
                        "across them): no target loss reaches a target CORE; evaluate runs that differ in CORE")
    if b >= 0:
        raise UserError(f"CORE does not fall with val loss in these runs (slope {b:.3g}): no target loss to plan")
    sxx = float(((loss - loss.mean()) ** 2).sum())
    se = math.sqrt(float(((core - (a + b * loss)) ** 2).sum()) / (loss.size - 2) / sxx)
    upper = b + stats.t.ppf(LEVEL_SLOPE, loss.size - 2) * se
    if upper >= 0:
        raise UserError(f"CORE does not fall with val loss clearly in these runs (slope {b:.3g}, its one-sided "
                        f"{LEVEL_SLOPE:.0%} bound {upper:.3g} is not below 0): no target loss to plan; evaluate more "
                        "runs, further apart in loss")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, loss.size, size=(n_boot, loss.size))
    x, y = loss[idx], core[idx]
    xm, ym = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample of one repeated run has no slope: nan
        bd = ((x - xm) * (y - ym)).sum(1) / ((x - xm) ** 2).sum(1)
    bd = np.where(bd < 0, bd, np.nan)  # a resample with a flat or rising line reaches no target
    ad = ym[:, 0] - bd * xm[:, 0]
    return CoreMap(float(a), float(b), ad, bd, (float(core.min()), float(core.max())))


def plan(law: Fit | dict, *, budgets=(), target_losses=(), flops_per_s: float | None = None,
         mfu: float = 0.4, level: float = LEVEL, price: float | None = None, target_cores=(),
         core_map: CoreMap | None = None) -> list[PlanRow]:
    """Rows of (params, tokens, tokens:params, FLOPs, predicted loss, hours, dollars) for budgets and target
    losses. Hours are device-hours at `flops_per_s` (one device's peak) x `mfu`: the wall time on one device, the
    cost on N of them (N times faster, the same device-hours); dollars are those hours at `price` per hour.

    `law` is an approach-3 Fit (intervals from its draws) or a dict with E, A, B, alpha, beta.
    A target at or below E (in some draws) is unreachable there: its compute is infinite.
    A target CORE is planned as the target loss `core_map` gives it; with draws of both the law and the map,
    draw i of one is paired with draw i of the other, so the interval carries both uncertainties.
    """
    if not budgets and not target_losses and not target_cores:
        raise UserError("give at least one compute budget, target loss or target CORE to plan for")
    if target_cores and core_map is None:
        raise UserError("a target CORE needs a CORE map (--core-map CSV of runs with loss and core columns)")
    check_device(flops_per_s, mfu, price)
    for c in budgets:
        if not 0 < c < np.inf:
            raise UserError(f"a compute budget must be a positive finite number of FLOPs, got {c}")
    for t in target_losses:
        if not 0 < t < np.inf:
            raise UserError(f"a target loss must be a positive finite number, got {t}")
    point, draws = _law_arrays(law)
    rows = []
    for c in budgets:
        rows.append(_row(f"C={c:.3g}", lambda p, c=c: np.full(np.shape(p["E"]), float(c)), point, draws,
                         flops_per_s, mfu, level, price))
    for t in target_losses:
        rows.append(_row(f"L={t:g}", lambda p, t=t: flops_for_loss(t, *(p[k] for k in LAW_PARAMS)), point, draws,
                         flops_per_s, mfu, level, price))
    for t in target_cores:
        if not 0 < t <= 1:
            raise UserError(f"a target CORE must be in (0, 1], got {t}")
        rows.append(_row(f"CORE={t:g}", lambda p, t=t: _core_flops(t, p, core_map), point, draws,
                         flops_per_s, mfu, level, price))
    if any(np.isinf(r.columns["flops"].value) for r in rows):
        bad = [r.label for r in rows if np.isinf(r.columns["flops"].value)]
        raise UserError(f"target loss at or below the fitted asymptote E={point['E']:.4g}: {', '.join(bad)}")
    return rows


def _core_flops(core: float, p: dict, core_map: CoreMap) -> np.ndarray:
    """Compute to reach `core` under law parameters p (a point, or arrays of draws): the map's loss, then the
    law's compute."""
    loss = np.full(np.shape(p["E"]), core_map.loss_for(core))
    if np.ndim(p["E"]) and core_map.b_draws.size:
        n = np.shape(p["E"])[0]
        loss = np.resize(core_map.loss_for(core, draws=True), n)  # pair draw i of the law with draw i of the map
    flops = flops_for_loss(np.where(np.isfinite(loss), loss, 0.0), *(p[k] for k in LAW_PARAMS))
    return np.where(np.isfinite(loss), flops, np.nan)


def core_warnings(target_cores, core_map: CoreMap | None) -> list[str]:
    """Targets outside the CORE range of the runs the map was fitted to (the line extrapolates there)."""
    if core_map is None:
        return []
    lo, hi = core_map.core_range
    return [f"CORE {t:g} is outside the map's runs ({lo:.3g}-{hi:.3g}): its target loss is an extrapolation"
            for t in target_cores if not lo <= t <= hi]


def _row(label: str, flops_of, point, draws, flops_per_s, mfu, level, price=None) -> PlanRow:
    """One plan row: the point plan, and per-draw plans for the intervals."""
    p_cols = _columns(flops_of(point), point, flops_per_s, mfu, price)
    d_cols = _columns(flops_of(draws), draws, flops_per_s, mfu, price) if draws else {}
    out = {}
    for k, v in p_cols.items():
        lo, hi = quantiles(d_cols[k], level) if k in d_cols else (float("nan"), float("nan"))
        out[k] = Estimate(float(v), lo, hi)
    return PlanRow(label, out)


def plan_to_json_dict(rows: list[PlanRow]) -> dict:
    """`{"<label>:<column>": {"value", "low", "high"}}`, the same shape as every fit's JSON."""
    clean = lambda v: float(v) if np.isfinite(v) else None
    return {f"{r.label}:{k}": {"value": clean(e.value), "low": clean(e.low), "high": clean(e.high)}
            for r in rows for k, e in r.columns.items()}


def format_plan(rows: list[PlanRow]) -> str:
    """A readable table: one line per row, each cell 'value [low, high]'."""
    cols = [c for c in COLUMNS if c in rows[0].columns]
    cell = lambda e: f"{e.value:.3g}" + (f" [{e.low:.3g}, {e.high:.3g}]" if np.isfinite(e.low) else "")
    table = [["plan"] + cols] + [[r.label] + [cell(r.columns[c]) for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in table)
