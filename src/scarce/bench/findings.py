"""The published findings, each checked against the bench's numbers with its interval."""

from __future__ import annotations

import numpy as np

from scarce.bench.common import estimate, fmt, identified, interval_text, tokens_per_window
from scarce.bench.evaluations import Evaluations
from scarce.bench.presets import BenchPreset
from scarce.scaling.paired import gain_share, loss_difference


def check_findings(p: BenchPreset, std: list[dict], chosen: dict, fits: dict, recipes: dict, ens: dict,
                   distillation: dict | None, ev: Evaluations, reference: list[dict],
                   default: str = "regularized", synthetic: dict | None = None) -> list[dict]:
    kw = {"n_boot": p.n_boot}
    out = []
    # 1. the standard recipe overfits: val against epochs has an interior minimum, per size
    per_size, u_shaped = [], 0
    for depth in p.sizes:
        mine = sorted((r for r in std if r["depth"] == depth), key=lambda r: r["epochs"])
        if len(mine) < 3:
            continue
        w = ev.windows([r["row"] for r in mine])
        best = int(np.argmin([r["val_loss"] for r in mine]))
        diff = loss_difference(w[-1], w[best], tokens_per_window(mine[0]["row"]), **kw)
        interior = 0 < best < len(mine) - 1
        u_shaped += interior and (diff["low"] or 0) > 0
        per_size.append({"depth": depth, "best_epochs": mine[best]["epochs"], "interior": interior, **diff})
    largest = per_size[-1] if per_size else {}
    best_by_size = {d: min(r["val_loss"] for r in std if r["depth"] == d) for d in p.sizes}
    sizes = sorted(best_by_size)
    stops = len(sizes) >= 2 and best_by_size[sizes[-1]] > best_by_size[sizes[-2]] - 0.01
    out.append(_finding("1", "the standard recipe overfits", u_shaped >= 2 if len(per_size) >= 2 else None,
                        largest, "nats (val at the most epochs - val at the best epochs, largest size)",
                        "Kim et al.: the standard recipe's loss rises with epochs and parameters at a fixed budget",
                        f"{u_shaped} of {len(per_size)} sizes have an interior minimum over epochs with the rise "
                        f"above its 95% interval; best standard val by size {fmt(best_by_size)}; the largest size "
                        f"{'does not improve' if stops else 'still improves'} on the next smaller one",
                        per_size=per_size, parameters_stop_improving=stops))
    # 2. the regularized recipe: monotone in parameters, power law with an asymptote below the standard's best
    reg = [chosen[d]["row"].val_loss for d in p.sizes]
    monotone = all(b < a for a, b in zip(reg, reg[1:]))
    w = ev.windows([chosen[d]["row"] for d in p.sizes])
    tpw = tokens_per_window(chosen[p.sizes[0]]["row"])
    steps = [{"from": a, "to": b, **loss_difference(w[i + 1], w[i], tpw, **kw)}  # larger minus smaller, paired
             for i, (a, b) in enumerate(zip(p.sizes, p.sizes[1:]))]
    std_best = min(best_by_size.values())
    law = fits.get("regularized_params")
    e_reg = estimate(law, "E") if identified(law) else {}
    if len(p.sizes) < 3:
        reproduced = None
    elif not monotone or min(reg) >= std_best:
        reproduced = False
    else:  # None when the asymptote is not identified (the fit sits at a bound)
        reproduced = None if e_reg.get("value") is None else e_reg["value"] < std_best
    certified = sum(c["descent"]["certified"] for c in chosen.values())
    out.append(_finding("2", "the regularized recipe scales in parameters below the standard recipe", reproduced,
                        e_reg, "nats (asymptote E of L(N) = E + A·N^-alpha)",
                        "Kim et al.: regularized asymptote 3.43 against the standard 3.75",
                        f"regularized val by size {fmt(dict(zip(p.sizes, reg)))} ({'monotone' if monotone else 'not monotone'}; "
                        f"each size minus the next smaller, paired: {_fmt_steps(steps)}); "
                        f"standard best {std_best:.4f}; {certified} of {len(chosen)} descents certified",
                        weight_decays=[c["descent"]["best"]["optim.weight_decay"] for c in chosen.values()],
                        size_steps=steps))
    # 3. ensembles: the K-scaling asymptote against the parameter-scaling asymptote
    ks = fits.get("k_scaling")
    e_k = estimate(ks, "E") if identified(ks) else {}
    reproduced = None
    if e_k.get("value") is not None:
        reproduced = e_k["value"] < (e_reg.get("value") if e_reg.get("value") is not None else min(reg))
    against = "the regularized asymptote" if e_reg.get("value") is not None else "the best regularized run"
    out.append(_finding("3", "ensembles go below the parameter-scaling asymptote", reproduced, e_k,
                        "nats (asymptote of L(K) at the largest size)",
                        "Kim et al.: ensembles 3.34 against the regularized asymptote 3.43",
                        f"compared with {against}" if ks is None or identified(ks) else
                        f"the K-scaling asymptote is not identified ({'; '.join(getattr(ks, 'warnings', []))})"))
    # 4. the joint limit
    joint = fits.get("joint")
    e_j = estimate(joint, "E") if identified(joint) else {}
    reproduced = None if e_j.get("value") is None else bool(e_j["value"] < min(reg))
    out.append(_finding("4", "the joint limit (K, then N, to infinity)", reproduced, e_j, "nats",
                        "Kim et al.: joint two-step limit 3.17", "ensembles at every size" if p.joint else "not run"))
    # 5. distillation
    out += distillation_findings(p, ens, distillation, ev, kw)
    # 6. data efficiency over the standard recipe
    eff = {name: r["efficiency"].get("parametric") or {} for name, r in recipes.items() if name != "standard"}
    reg_eff = eff.get("regularized", {})
    edges = [f"{r['multiple']}x ({r['edge']} epochs)" for r in reference if r["edge"]]
    reproduced = None if reg_eff.get("low") is None else reg_eff["low"] > 1
    out.append(_finding("6", "data efficiency over the standard recipe", reproduced, eff.get(default, {}),
                        f"x (parametric multiple of the default recipe, {default})",
                        "Kim et al.: 2.29x regularized, 5.17x joint; Slowrun 10x",
                        "; ".join(f"{n} {interval_text(e)}" for n, e in eff.items())
                        + (f"; reference tuned at a grid edge at {', '.join(edges)}" if edges else ""),
                        reference_edges=edges))
    # 5a-seq, 5b-seq and 7: students on text the teachers write
    out += synthetic_findings(p, ens, synthetic, fits, ev, kw)
    return out


def distillation_findings(p: BenchPreset, ens: dict, distillation: dict | None, ev: Evaluations, kw: dict) -> list:
    if distillation is None or p.largest not in ens:
        none = "not run (the preset does not distill)"
        return [_finding(f"5{x}", name, None, {}, "", pub, none) for x, name, pub in DISTILL_FINDINGS]
    rows = ens[p.largest]["rows"]
    members = ev.windows([rows[0], distillation["student"], distillation["self"]])
    prefixes = ev.prefixes(rows)
    chain = ev.prefixes(distillation["chain"])
    tpw = tokens_per_window(rows[0])
    share = gain_share(members[0], prefixes[-1], members[1], **kw)
    self_gain = loss_difference(members[0], members[2], tpw, **kw)
    chain_gain = loss_difference(prefixes[-1], chain[-1], tpw, **kw)
    k = len(rows)
    return [
        _finding("5a", DISTILL_FINDINGS[0][1], _above(share, 0.5), share,
                 f"share of the {k}-member ensemble's gain over one member kept by the student",
                 DISTILL_FINDINGS[0][2], f"student val {distillation['student']['val_loss']:.4f}", above=0.5),
        _finding("5b", DISTILL_FINDINGS[1][1], _above(self_gain, 0.0), self_gain,
                 "nats (teacher val - self-distilled student val)", DISTILL_FINDINGS[1][2],
                 f"self-distilled val {distillation['self']['val_loss']:.4f}", above=0.0),
        _finding("5c", DISTILL_FINDINGS[2][1], _above(chain_gain, 0.0), chain_gain,
                 f"nats (independent {k}-ensemble val - chain {k}-ensemble val)", DISTILL_FINDINGS[2][2],
                 f"alpha {p.distill_alpha}, T {p.distill_temperature}", above=0.0),
    ]


DISTILL_FINDINGS = (
    ("a", "an ensemble distilled into one student keeps most of its gain (logit distillation on the budget)",
     "Kim et al.: 83% of an 8-member ensemble's gain (their protocol: generated text, 5a-seq)"),
    ("b", "self-distillation helps (logit distillation on the budget)",
     "Kim et al.: self-distillation improves a model of the same size"),
    ("c", "chain distillation beats independent members", "Slowrun: chain (alpha 0.5, T 1) took 8 members from 7x to 8x"),
)


SYNTHETIC_FINDINGS = (
    ("5a-seq", "an ensemble's student on text the ensemble writes keeps most of its gain",
     "Kim et al. (Section 5: unconditional samples at T 1, real:synthetic 10:90): 83% of an 8-member ensemble's gain"),
    ("5b-seq", "self-distillation through generated text helps",
     "Kim et al. (Section 5: real:synthetic 25:75): the self-distilled student beats its teacher"),
    ("7", "the student's loss falls as the teachers write more",
     "arXiv 2603.18534: loss falls with generations per real document up to 32 (1.48x; stitched megadocs 1.80x)"),
)


def synthetic_findings(p: BenchPreset, ens: dict, synthetic: dict | None, fits: dict, ev: Evaluations,
                       kw: dict) -> list:
    """5a and 5b under Kim et al.'s protocol (students trained on generated text), and finding 7: the student's
    val loss against generated tokens, its fitted asymptote, and whether the most generated text beats the least
    (paired on val windows)."""
    if synthetic is None or p.largest not in ens:
        none = "not run (the preset has no synthetic stage)"
        return [_finding(fid, name, None, {}, "", pub, none) for fid, name, pub in SYNTHETIC_FINDINGS]
    rows, k = ens[p.largest]["rows"], len(ens[p.largest]["rows"])
    firsts = {int(m): r[0] for m, r in synthetic["students"].items()}
    chosen = min(firsts, key=lambda m: firsts[m]["select_loss"])  # on select, never val
    tpw = tokens_per_window(rows[0])
    seeds = next(r for m, r in synthetic["students"].items() if int(m) == chosen)
    w = ev.windows([rows[0], *seeds])
    # the students' mean loss per val window: with several seeds, the share of the average student, not of one
    share = gain_share(w[0], ev.prefixes(rows)[-1], w[1:].mean(axis=0), **kw)
    frac = synthetic["frac"]
    vals = ", ".join(f"{r['val_loss']:.4f}" for r in seeds)
    out = [_finding("5a-seq", SYNTHETIC_FINDINGS[0][1], _above(share, 0.5), share,
                    f"share of the {k}-member ensemble's gain over one member kept by the student"
                    + (f" (the mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""),
                    SYNTHETIC_FINDINGS[0][2],
                    f"student on {chosen}x the budget of {synthetic['mode']} text (share {frac:g}, chosen on "
                    f"select): val {vals}", above=0.5)]
    if synthetic.get("self"):
        gain = loss_difference(w[0], ev.windows([synthetic["self"]])[0], tpw, **kw)
        out.append(_finding("5b-seq", SYNTHETIC_FINDINGS[1][1], _above(gain, 0.0), gain,
                            "nats (teacher val - its student's val)", SYNTHETIC_FINDINGS[1][2],
                            f"one member writes {min(firsts)}x the budget; its student (share "
                            f"{p.synthetic_self_frac:g}): val {synthetic['self']['val_loss']:.4f}", above=0.0))
    else:
        out.append(_finding("5b-seq", SYNTHETIC_FINDINGS[1][1], None, {}, "", SYNTHETIC_FINDINGS[1][2], "not run"))
    ms = sorted(firsts)
    law = fits.get("synthetic")
    e = estimate(law, "E") if identified(law) else {}
    fall = {}
    if len(ms) >= 2:
        ends = ev.windows([firsts[ms[0]], firsts[ms[-1]]])
        fall = loss_difference(ends[0], ends[1], tpw, **kw)
    curve = ", ".join(f"{m}x: {firsts[m]['val_loss']:.4f}" for m in ms)
    asymptote = (f"asymptote {e['value']:.4f} [{_end(e['low'])}, {_end(e['high'])}]" if e else
                 "asymptote not identified" if law is not None else "fewer than 3 sizes: no fit")
    drop = (f"{ms[0]}x - {ms[-1]}x: {fall['value']:+.4f} [{fall['low']:+.4f}, {fall['high']:+.4f}]"
            if fall.get("low") is not None else "one size")
    out.append(_finding("7", SYNTHETIC_FINDINGS[2][1], None if fall.get("low") is None else fall["low"] > 0, e,
                        "nats (asymptote E of the student's L(G) = E + A·G^-alpha over generated tokens G)",
                        SYNTHETIC_FINDINGS[2][2], f"student val by generated tokens {curve}; {drop} (paired); "
                        f"{asymptote}", fall=fall))
    return out


def _end(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _fmt_steps(steps: list[dict]) -> str:
    return ", ".join(f"{s['to']} - {s['from']}: {s['value']:+.4f} [{s['low']:+.4f}, {s['high']:+.4f}]"
                     if s.get("low") is not None else f"{s['to']} - {s['from']}: {s['value']:+.4f}" for s in steps)


def _above(est: dict, threshold: float) -> bool | None:
    """A finding that holds when its estimate's interval lies above `threshold` (None: not measured)."""
    return None if est.get("low") is None else est["low"] > threshold


def _finding(fid: str, name: str, reproduced, est: dict, unit: str, published: str, detail: str, **extra) -> dict:
    """A finding's record; `above=t` in `extra` says it holds when its interval lies above t (so several samples
    can be judged on their combined interval, `scarce.bench.samples`)."""
    return {"id": fid, "name": name, "reproduced": None if reproduced is None else bool(reproduced),
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
