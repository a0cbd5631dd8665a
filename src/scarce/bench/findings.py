"""The published findings, each a pure function of the bench's measurements, judged on its interval.

A finding reads "reproduced" only where its 95% interval clears the paper's claim, "not reproduced" where the
interval lies on the wrong side, "not shown" where it straddles the criterion, "not identified" where its number
comes from a fit at a bound (an asymptote at 0, an exponent at its limit), "not run" where the preset did not
measure it. Every interval is over the same paired draws (`scarce.bench.measured`: val windows and seed noise).
docs/bench.md tabulates each finding: the paper's sentence and number, the criterion here, the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scarce.bench.common import Unfitted, estimate, fmt, identified, interval_text, tokens_per_window
from scarce.bench.evaluations import Evaluations
from scarce.bench.measured import Measured, interval
from scarce.bench.presets import BenchPreset
from scarce.bench.stages import Stages
from scarce.scaling.paired import loss_difference

VERDICTS = ("reproduced", "not reproduced", "not shown", "not identified", "not run")
KIM_REGULARIZED, KIM_JOINT, SLOWRUN = 2.29, 5.17, 10.0
"""Published multiples: Kim et al.'s regularized recipe and joint limit; NanoGPT Slowrun's ~10x."""


@dataclass
class Bench:
    """What the findings read: the bench's stages and fits (rows are run-store rows), and the paired draws."""

    p: BenchPreset
    stages: Stages
    std: list[dict]
    fits: dict
    recipes: dict
    ens: dict
    m: Measured
    reference: list[dict]
    default: str = "regularized"

    @property
    def chosen(self) -> dict:
        return self.stages.regularized.chosen


def check_findings(b: Bench) -> list[dict]:
    """Every finding's records, in report order."""
    return [f for check in FINDINGS for f in check(b)]


def judge(est: dict, threshold: float, side: str) -> str:
    """The verdict of an interval against a criterion: `side` 'above' holds when the interval lies above
    `threshold`, 'below' when below; on the other side entirely, not reproduced; across it, not shown."""
    low, high = est.get("low"), est.get("high")
    if est.get("value") is None:
        return "not shown"
    clear_above = low is not None and low > threshold
    clear_below = high is not None and high < threshold
    if side == "above":
        return "reproduced" if clear_above else "not reproduced" if clear_below else "not shown"
    return "reproduced" if clear_below else "not reproduced" if clear_above else "not shown"


def difference(a: np.ndarray, c: np.ndarray, value: float) -> dict:
    """A paired difference's point and interval from two models' draws (a - c)."""
    return interval(value, a - c)


def overfits(b: Bench) -> list[dict]:
    """1. Per size, val at the most epochs minus val at the epochs best on select (never val), paired with seed
    noise: reproduced when at least two sizes (every size, if fewer) have that minimum inside the grid and the
    rise above zero; not reproduced when no size's best is inside the grid."""
    per_size = []
    for depth in b.p.sizes:
        mine = sorted((r for r in b.std if r["depth"] == depth), key=lambda r: r["epochs"])
        if len(mine) < 3:
            continue
        best = int(np.argmin([r["select_loss"] for r in mine]))
        d = b.m.runs([mine[-1]["row"], mine[best]["row"]])
        rise = difference(d[:, 0], d[:, 1], mine[-1]["val_loss"] - mine[best]["val_loss"])
        per_size.append({"depth": depth, "best_epochs": mine[best]["epochs"], "interior": 0 < best < len(mine) - 1,
                         **rise})
    clear = sum(s["interior"] and (s["low"] or 0) > 0 for s in per_size)
    verdict = ("not run" if not per_size else "reproduced" if clear >= min(2, len(per_size))
               else "not reproduced" if not any(s["interior"] for s in per_size) else "not shown")
    best_by_size = {d: min(r["val_loss"] for r in b.std if r["depth"] == d) for d in b.p.sizes}
    sizes = sorted(best_by_size)
    stops = len(sizes) >= 2 and best_by_size[sizes[-1]] > best_by_size[sizes[-2]] - 0.01
    what = ("1", "the standard recipe overfits",
            "Kim et al.: the standard recipe's loss rises with epochs and parameters at a fixed budget")
    return [finding(what, verdict, per_size[-1] if per_size else {},
                     "nats (val at the most epochs - val at the epochs best on select, largest size)",
                     f"{clear} of {len(per_size)} sizes have their best epochs (on select) inside the grid with the "
                     f"rise above its 95% interval; best standard val by size {fmt(best_by_size)}; the largest size "
                     f"{'does not improve' if stops else 'still improves'} on the next smaller one",
                     per_size=per_size, parameters_stop_improving=stops, above=0.0)]


def _standard_best(b: Bench):
    """The standard recipe's best run on the budget, chosen on select over every size and epoch count."""
    return min(b.std, key=lambda r: r["select_loss"])["row"] if b.std else None


def _aligned(fit, name: str) -> np.ndarray | None:
    return None if fit is None or isinstance(fit, Unfitted) else fit.data["aligned"][name]


def scales_in_parameters(b: Bench) -> list[dict]:
    """2. Every size step of the regularized recipe lowers val (paired intervals below 0) and the fitted asymptote
    of L(N) lies below the standard recipe's best (paired interval below 0)."""
    name, pub = "the regularized recipe scales in parameters below the standard recipe", \
        "Kim et al.: regularized asymptote 3.43 against the standard 3.75"
    rows = [b.chosen[d]["row"] for d in b.p.sizes]
    d = b.m.runs(rows)
    steps = [{"from": x, "to": y, **difference(d[:, i + 1], d[:, i], rows[i + 1].val_loss - rows[i].val_loss)}
             for i, (x, y) in enumerate(zip(b.p.sizes, b.p.sizes[1:]))]
    law = b.fits.get("regularized_params")
    e_reg = estimate(law, "E") if identified(law) else {}
    std = _standard_best(b)
    gap = {}
    if e_reg and std is not None:
        gap = difference(_aligned(law, "E"), b.m.runs([std])[:, 0], e_reg["value"] - std.val_loss)
    if len(b.p.sizes) < 3:
        verdict = "not run"
    elif any(s["low"] is not None and s["low"] > 0 for s in steps):
        verdict = "not reproduced"
    elif not e_reg:
        verdict = "not identified"
    else:
        gap_verdict = judge(gap, 0.0, "below")
        steps_down = all(s["high"] is not None and s["high"] < 0 for s in steps)
        verdict = gap_verdict if gap_verdict != "reproduced" or steps_down else "not shown"
    certified = sum(c["descent"]["certified"] for c in b.chosen.values())
    return [finding(("2", name, pub), verdict, e_reg, "nats (asymptote E of L(N) = E + A·N^-alpha)",
                     f"regularized val by size {fmt({x: r.val_loss for x, r in zip(b.p.sizes, rows)})} (each size minus "
                     f"the next smaller, paired with seed noise: {_fmt_steps(steps)}); asymptote minus the standard "
                     f"best ({'-' if std is None else f'{std.val_loss:.4f}'}, on select): {fmt_est(gap)}"
                     + ("" if e_reg or law is None else f"; the law is at a bound ({'; '.join(law.warnings)})")
                     + f"; {certified} of {len(b.chosen)} descents certified",
                     weight_decays=[c["descent"]["best"]["optim.weight_decay"] for c in b.chosen.values()],
                     size_steps=steps, asymptote_minus_standard=gap)]


def ensembles_below(b: Bench) -> list[dict]:
    """3. The K-scaling asymptote at the largest size lies below the regularized asymptote (or, that not
    identified, below the best regularized run), paired."""
    name, pub = "ensembles go below the parameter-scaling asymptote", \
        "Kim et al.: ensembles 3.34 against the regularized asymptote 3.43"
    ks, law = b.fits.get("k_scaling"), b.fits.get("regularized_params")
    if ks is None:
        return [finding(("3", name, pub), "not run", {}, "", "no ensemble of 3 members or more")]
    if not identified(ks):
        return [finding(("3", name, pub), "not identified", estimate(ks, "E"), "nats (asymptote of L(K) at the largest size)",
                         f"the K-scaling asymptote is not identified ({'; '.join(getattr(ks, 'warnings', []))})")]
    e_k = estimate(ks, "E")
    if identified(law):
        against, other, value = "the regularized asymptote", _aligned(law, "E"), law.value("E")
    else:
        best = min(b.chosen.values(), key=lambda c: c["row"].select_loss)["row"]
        against, other, value = "the best regularized run (the regularized asymptote is not identified)", \
            b.m.runs([best])[:, 0], best.val_loss
    gap = difference(_aligned(ks, "E"), other, e_k["value"] - value)
    return [finding(("3", name, pub), judge(gap, 0.0, "below"), e_k, "nats (asymptote of L(K) at the largest size)",
                     f"minus {against}, paired: {fmt_est(gap)}", gap=gap)]


def joint_limit(b: Bench) -> list[dict]:
    """4. Growing the members' size lowers the ensemble asymptote further (Kim et al.): every step of E_N (each
    size's K-asymptote) below zero and the joint E below the largest size's E_N, all paired."""
    name, pub = "growing the members' size lowers the ensemble asymptote (the joint limit)", \
        "Kim et al.: joint two-step limit 3.17, below every size's ensemble asymptote"
    joint = b.fits.get("joint")
    if joint is None or isinstance(joint, Unfitted):
        why = "ensembles at every size not run" if not b.p.joint else getattr(joint, "reason", "not fitted")
        return [finding(("4", name, pub), "not run", {}, "nats", why)]
    e = estimate(joint, "E")
    keys = [k for k in joint.estimates if k.startswith("E_N=")]
    if joint.flags.get("at_bound") or not identified(joint):
        return [finding(("4", name, pub), "not identified", e, "nats",
                         f"a fit of the joint limit is at a bound: {'; '.join(joint.warnings)}")]
    draws = joint.data["aligned"]
    steps = [{"from": a, "to": c, **difference(draws[c], draws[a], joint.value(c) - joint.value(a))}
             for a, c in zip(keys, keys[1:])]
    below = difference(draws["E"], draws[keys[-1]], joint.value("E") - joint.value(keys[-1]))
    if any(s["low"] is not None and s["low"] > 0 for s in steps) or judge(below, 0.0, "below") == "not reproduced":
        verdict = "not reproduced"
    elif all(s["high"] is not None and s["high"] < 0 for s in steps) and judge(below, 0.0, "below") == "reproduced":
        verdict = "reproduced"
    else:
        verdict = "not shown"
    return [finding(("4", name, pub), verdict, e, "nats (joint E)",
                     f"size steps of the K-asymptote E_N, paired: {_fmt_steps(steps)}; E minus the largest size's "
                     f"E_N: {fmt_est(below)}", size_steps=steps, below_largest=below)]


def share_kept(base: np.ndarray, target: np.ndarray, candidate: np.ndarray, value: float) -> dict:
    """(L_base - L_candidate) / (L_base - L_target) from paired draws (a student keeping 83% of its ensemble's
    gain: 0.83); draws whose gain is 0 are left out."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (base - candidate) / (base - target)
    return interval(value, np.where(np.isfinite(share), share, np.nan))


def efficiency(b: Bench) -> list[dict]:
    """6. The regularized recipe's multiple over the standard recipe, read off the reference law where that law is
    identified, else off the reference curve itself where the loss lies inside it: above 1x with its interval;
    its size stated against the published multiples."""
    name = "data efficiency over the standard recipe"
    pub = f"Kim et al.: {KIM_REGULARIZED}x regularized, {KIM_JOINT}x joint; Slowrun ~{SLOWRUN:g}x"
    reg = b.recipes.get("regularized", {}).get("efficiency", {})
    edges = [f"{r['multiple']}x ({r['edge']} epochs)" for r in b.reference if r["edge"]]
    ref = b.fits.get("reference")
    kind = "parametric" if identified(ref) else "empirical"
    est = reg.get(kind) or {}
    if kind == "empirical" and any("extrapolat" in w for w in est.get("warnings", [])):
        verdict, kind = "not identified", "none"
    else:
        verdict = judge(est, 1.0, "above")
    size = _against_published(est) if verdict != "not identified" else "its size is not identified"
    others = "; ".join(f"{n} {interval_text(r['efficiency'].get('parametric') or {})}"
                       for n, r in b.recipes.items() if n != "standard")
    return [finding(("6", name, pub), verdict, est if verdict != "not identified" else {},
                     (f"x (the regularized recipe's {kind} multiple" if kind != "none" else
                      "x (no multiple: the regularized loss lies outside the reference's losses")
                     + f"; the reference law {'is identified' if identified(ref) else 'is at a bound'})",
                     f"{size}; parametric multiples: {others}"
                     + (f"; reference tuned at a grid edge at {', '.join(edges)}" if edges else ""),
                     reference_edges=edges, multiple_kind=kind, above=1.0)]


def _against_published(est: dict) -> str:
    """Where an interval sits against Kim et al.'s 2.29x (regularized) and 5.17x (joint) and Slowrun's ~10x."""
    if est.get("value") is None:
        return "no multiple"
    low, high = est.get("low"), est.get("high")
    parts = []
    for label, v in ((f"Kim et al.'s regularized {KIM_REGULARIZED}x", KIM_REGULARIZED),
                     (f"their joint {KIM_JOINT}x", KIM_JOINT), (f"Slowrun's ~{SLOWRUN:g}x", SLOWRUN)):
        where = ("below" if high is not None and high < v else "above" if low is not None and low > v
                 else "within the interval of")
        parts.append(f"{where} {label}")
    return f"{interval_text(est)}: " + ", ".join(parts)


FINDINGS = (overfits, scales_in_parameters, ensembles_below, joint_limit, efficiency)
"""Every finding of the built-in stages in report order, each a function of the bench's measurements (`Bench`) to
its records; the findings of the protocol's stages (`scarce.bench.stage`) follow them, in the registry's order."""


def fmt_est(e: dict) -> str:
    if not e or e.get("value") is None:
        return "-"
    end = lambda v: "-" if v is None else f"{v:+.4f}"
    return f"{e['value']:+.4f} [{end(e.get('low'))}, {end(e.get('high'))}]"


def _fmt_steps(steps: list[dict]) -> str:
    return ", ".join(f"{s['to']} - {s['from']}: {fmt_est(s)}" for s in steps)


def finding(what: tuple[str, str, str], verdict: str, est: dict, unit: str, detail: str, **extra) -> dict:
    """A finding's record (`what`: its id, name and the published claim): its verdict (one of VERDICTS) and, for
    readers of older bench.json, `reproduced` (true, false, or null when neither). `above=t` in `extra` says it holds when its interval lies above t (so
    several samples can be judged on their combined interval, `scarce.bench.samples`)."""
    assert verdict in VERDICTS, verdict
    fid, name, published = what
    reproduced = {"reproduced": True, "not reproduced": False}.get(verdict)
    return {"id": fid, "name": name, "verdict": verdict, "reproduced": reproduced,
            "value": est.get("value"), "low": est.get("low"), "high": est.get("high"), "unit": unit,
            "published": published, "detail": detail, **extra}


def hygiene_of(reference: list[dict], findings: list[dict], std: list[dict], chosen: dict, ev: Evaluations,
               n_boot: int) -> dict:
    """|select - val| on the reference runs, and standard errors of paired val differences: per size, the
    standard recipe's best run against the regularized recipe's (the comparison of two settings the recipes
    rest on, `paired_difference_se` their largest), and finding 1's contrast (an overfit run against the best,
    a difference ten times larger whose per-window spread is larger too)."""
    gaps = [abs(r["row"].select_loss - r["row"].val_loss) for r in reference]
    per_size = []
    for depth, c in chosen.items():
        mine = [r for r in std if r["depth"] == depth]
        if not mine:
            continue
        best = min(mine, key=lambda r: r["val_loss"])["row"]
        w = ev.windows([best, c["row"]])
        diff = loss_difference(w[0], w[1], tokens_per_window(best), n_boot=n_boot)
        per_size.append({"depth": depth, **diff})
    ses = [d["se"] for d in per_size if d.get("se") is not None]
    overfit = [f.get("se") for f in findings[0].get("per_size", [])] if findings else []
    overfit = [s for s in overfit if s is not None]
    return {"select_val_gap_max": max(gaps), "select_val_gap_mean": float(np.mean(gaps)),
            "paired_difference_se": max(ses) if ses else None, "paired_differences": per_size,
            "overfit_difference_se": max(overfit) if overfit else None}
