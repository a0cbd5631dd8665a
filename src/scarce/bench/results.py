"""Fits, data efficiency and the result of a bench: what bench.json and the report hold."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from scarce.bench.common import (
    Unfitted,
    ensemble_json,
    estimate,
    fit_json,
    knobs,
    quietly,
    recipe_entry,
    tokens_per_window,
)
from scarce.bench.evaluations import Evaluations
from scarce.bench.findings import Bench, check_findings, hygiene_of
from scarce.bench.measured import Measured, interval, reference_noise, seed_noise
from scarce.bench.presets import BenchPreset
from scarce.bench.result import BenchResult
from scarce.bench.stage import STAGES, Measure
from scarce.bench.stages import Stages, best_on_select
from scarce.eval import nextline
from scarce.recipes.common import run_train_tokens
from scarce.runs.store import RunRow
from scarce.scaling import empirical_efficiency, fit_efficiency, fit_joint, fit_power_law
from scarce.scaling.noise import SeedNoise


def bench_results(p: BenchPreset, recipe: str, stores: dict, stages: Stages,
                  ev: Evaluations) -> tuple[BenchResult, dict]:
    """The result and the fit objects (the report plots them)."""
    chosen = stages.regularized.chosen
    reference = _choose_reference(p, stages.standard.rows)
    ref_rows = [r["row"] for r in reference]
    ref_tokens = [r["train_tokens"] for r in reference]
    ref_loss = [r.val_loss for r in ref_rows]
    budget = reference[0]["train_tokens"]
    ens_evals = {d: ev.ensemble(rows, f"d{d}") for d, rows in stages.ensembles.members.items()}
    # Every interval comes from the same paired draws: resampled val windows plus seed noise, measured where the
    # bench repeats a setting (each size's ensemble members; the synthetic students of one teacher).
    # Member 0 is the chosen run itself; the others repeat it with other seeds unless the member heuristic changes
    # their epochs or weight decay, when only they repeat one setting.
    first = 0 if p.member_epochs_factor == 1 and p.member_wd_factor == 1 else 1
    m = Measured(ev, p.n_boot, tokens_per_window(ref_rows[0]),
                 seed_noise(ev, p.n_boot, [e["rows"][first:] for e in ens_evals.values()]))
    for s in STAGES:
        if s.name in stages.named:
            s.noise(m, p, stages.named[s.name])
    ref_noise, misfit = reference_noise(m.noise, ref_tokens, ref_loss, quietly(fit_power_law, ref_tokens, ref_loss,
                                                                              n_boot=0))
    m.use([r.id for r in ref_rows], ref_noise)
    ref_draws = m.runs(ref_rows)
    fits: dict = {"reference": quietly(fit_power_law, ref_tokens, ref_loss, y_draws=ref_draws)}
    recipes = {"standard": recipe_entry(ref_rows[0].val_loss, ref_rows[0].val_bpb, ref_rows[0].flops, [ref_rows[0].id])}
    draws = {"standard": ref_draws[:, 0]}
    best_reg = min(chosen.values(), key=lambda c: c["row"].select_loss)["row"]
    recipes["regularized"] = recipe_entry(best_reg.val_loss, best_reg.val_bpb, best_reg.flops, [best_reg.id])
    draws["regularized"] = m.runs([best_reg])[:, 0]
    default = "regularized"
    if ens_evals:
        e = ens_evals[p.largest]
        k = len(e["rows"])
        default = f"ensemble-k{k}"
        recipes[default] = recipe_entry(e["prefix_val_loss"][-1], e["prefix_val_bpb"][-1],
                                        sum(r.flops for r in e["rows"]), [r.id for r in e["rows"]])
        prefix_draws = m.prefixes(e["rows"])
        draws[default] = prefix_draws[:, -1]
        if k >= 3:  # intervals from the losses on resampled val windows (3-4 points say little otherwise)
            fits["k_scaling"] = quietly(fit_power_law, list(range(1, k + 1)), e["prefix_val_loss"], y_draws=prefix_draws)
    if len(p.sizes) >= 3:
        rows = [chosen[d]["row"] for d in p.sizes]
        fits["regularized_params"] = quietly(fit_power_law, [r.summary["non_embedding_params"] for r in rows],
                                             [r.val_loss for r in rows], y_draws=m.runs(rows))
    if p.joint and len(ens_evals) >= 3 and all(len(e["rows"]) >= 3 for e in ens_evals.values()):
        n, k, loss, joint_draws = [], [], [], []
        for e in ens_evals.values():
            joint_draws.append(m.prefixes(e["rows"]))
            for i, value in enumerate(e["prefix_val_loss"]):
                n.append(e["rows"][0].summary["non_embedding_params"])
                k.append(i + 1)
                loss.append(value)
        fits["joint"] = quietly(fit_joint, n, k, loss, n_boot=p.n_boot, y_draws=np.hstack(joint_draws))
    if "joint" in fits and not isinstance(fits["joint"], Unfitted):
        limit = fits["joint"].estimates["E"]
        recipes["joint-limit"] = recipe_entry(limit.value, None, None, [])
        draws["joint-limit"] = fits["joint"].data["aligned"]["E"]  # the joint fit's own draws, paired
    ms = Measure(p, m, ens_evals, recipes, draws, fits)
    entries = {s.json_key(): s.results(ms, stages.named[s.name]) if s.name in stages.named else None for s in STAGES}
    covers = _covers(m, ref_noise, misfit)
    for name, entry in recipes.items():
        loss_draws = np.column_stack([ref_draws, draws[name]])
        for kind, fn in (("parametric", fit_efficiency), ("empirical", empirical_efficiency)):
            fit = quietly(fn, ref_tokens, ref_loss, entry["val_loss"], budget, n_boot=p.n_boot, loss_draws=loss_draws)
            fits[f"efficiency_{kind}:{name}"] = fit
            entry["efficiency"][kind] = {**estimate(fit, "efficiency"), "covers": covers["covers"]}
        if name != "standard":  # the reference's own 1x point: its two readings differ by the law's misfit there
            entry["disagree"] = _disagreement(fits[f"efficiency_parametric:{name}"],
                                              fits[f"efficiency_empirical:{name}"])
    std_table = _standard_table(p, stages.standard.rows, ev)
    b = Bench(p, stages, std_table, fits, recipes, ens_evals, m, reference, default)
    findings = check_findings(b)
    for s in STAGES:  # each stage's findings before the one it names, else after all
        at = next((i for i, f in enumerate(findings) if f["id"] == s.findings_before), len(findings))
        findings[at:at] = s.findings(b, entries[s.json_key()])
    downstream = None
    if p.downstream_items:
        groups = {"standard": [reference[0]["row"]], "regularized": [best_reg]}
        if ens_evals:
            groups[default] = ens_evals[p.largest]["rows"]
        # the standard grid spans the budget's range of val loss (under- to overfit); of the descents, each size's
        # chosen run (their other runs sit near it and would double the scoring, not the range)
        runs_on_budget = list({r.id: r for r in [t["row"] for t in std_table]
                               + [chosen[d]["row"] for d in p.sizes if d in chosen]}.values())
        downstream = _downstream(p, stores[1], groups, runs_on_budget, ev)
        for name, acc in downstream["recipes"].items():
            recipes[name]["downstream"] = acc
    result = BenchResult(
        preset=p.name, recipe=recipe, default_recipe=default, budget_tokens=budget, recipes=recipes,
        efficiency=recipes[default]["efficiency"], fits={k: fit_json(f) for k, f in fits.items() if f},
        reference=[{"multiple": r["multiple"], "train_tokens": r["train_tokens"], "run_id": r["row"].id,
                    "epochs": r["row"].config.train.epochs, "epochs_tried": r["epochs_tried"],
                    "edge": r["edge"], "val_loss": r["row"].val_loss, "val_bpb": r["row"].val_bpb,
                    "select_loss": r["row"].select_loss, "flops": r["row"].flops} for r in reference],
        single=[{"run_id": r.id, "chosen": any(r.id == c["row"].id for c in chosen.values()), **knobs(r),
                 **{c: getattr(r, c) for c in ("val_loss", "val_bpb", "select_loss", "flops")}}
                for r in stages.regularized.tried],
        ensemble=None if not ens_evals else ensemble_json(ens_evals[p.largest]),
        ensembles={str(d): ensemble_json(e) for d, e in ens_evals.items()},
        findings=findings, standard=[{k: v for k, v in r.items() if k != "row"} for r in std_table],
        regularized=[{"depth": d, "best": c["descent"]["best"], "select_loss": c["descent"]["loss"],
                      "val_loss": c["row"].val_loss, "certified": c["descent"]["certified"],
                      "evaluations": c["descent"]["evaluations"], "certificate": c["descent"]["certificate"],
                      "run_id": c["row"].id, "params": c["row"].summary["non_embedding_params"]}
                     for d, c in chosen.items()],
        stages=entries,
        hygiene=hygiene_of(reference, findings, std_table, chosen, ev, p.n_boot), downstream=downstream, smoke=p.smoke,
        intervals=covers, warnings=bench_warnings(fits, reference, covers, recipes, default))
    return result, fits


def edge_shift(reference: list[dict], loss: float) -> dict | None:
    """How far a reference cut short by its grid could move a multiple: each point chosen at the most epochs tried
    lowered by what its last doubling of epochs gained (val at the next fewer epochs minus val at the most), and
    the multiple of `loss` read again off those points (no draws: a what-if, not an interval)."""
    tokens, losses, gains = [], [], []
    for r in reference:
        row, val = r["row"], r["row"].val_loss
        if r["edge"] == "most" and r.get("runs"):
            fewer = max((x for x in r["runs"] if x.config.train.epochs < row.config.train.epochs),
                        key=lambda x: x.config.train.epochs, default=None)
            gain = max(0.0, fewer.val_loss - val) if fewer is not None else 0.0
            gains.append(f"{r['multiple']}x {gain:.3f} nats")
            val -= gain
        tokens.append(r["train_tokens"])
        losses.append(val)
    if not gains:
        return None
    out = {"gains": ", ".join(gains)}
    for kind, fn in (("parametric", fit_efficiency), ("empirical", empirical_efficiency)):
        fit = quietly(fn, tokens, losses, loss, tokens[0], n_boot=0)
        out[kind] = float("nan") if isinstance(fit, Unfitted) else fit.value("efficiency")
    return out


def bench_warnings(fits: dict, reference: list[dict], covers: dict, recipes: dict, default: str) -> list[str]:
    """Every caveat a reader of the headline needs, one line each: fits at a bound, a reference tuned at its
    grid's edge, a reference law that misses its points beyond seed noise, multiples whose two readings disagree,
    seed noise not measured."""
    out = [f"fit {name}: at a bound (its asymptote or exponent is not identified)" for name, f in fits.items()
           if getattr(f, "flags", {}).get("at_bound") and not name.startswith("efficiency_")]
    edges = [f"{r['multiple']}x" for r in reference if r["edge"] == "most"]
    if edges:
        moved = edge_shift(reference, recipes[default]["val_loss"])
        out.append(f"the reference chose the most epochs tried at {', '.join(edges)}: the standard recipe may do better "
                   "there with more epochs, which would lower every multiple"
                   + (f"; were each such point to gain its last doubling's gain again ({moved['gains']}), the {default} "
                      f"multiple would read {moved['parametric']:.2f}x parametric, {moved['empirical']:.2f}x empirical"
                      if moved else ""))
    lof = covers.get("lack_of_fit")
    if lof and lof["p"] < 0.05:
        out.append(f"the reference misses its power law beyond seed noise (F {lof['F']:.1f}, p {lof['p']:.3g}): every "
                   "multiple's interval carries that misfit")
    if not covers.get("seed_noise"):
        out.append("no setting was repeated with other seeds: intervals cover val windows (and the reference law's "
                   "misfit) but not seed noise")
    for name, r in recipes.items():
        if r.get("disagree"):
            d = r["disagree"]
            out.append(f"{name}: the parametric and empirical multiples disagree beyond their intervals (ratio "
                       f"{d['value']:.2f} [{d['low']:.2f}, {d['high']:.2f}])")
    return out


def _choose_reference(p: BenchPreset, standard: list[RunRow]) -> list[dict]:
    """Per size of data: the reference size's run best on select (epochs chosen on select, never val),
    flagged when the chosen epochs sit at an edge of the grid tried."""
    out = []
    for m in p.multiples:
        mine = [r for r in standard if r.config.tags["multiple"] == m
                and r.config.model.depth == p.reference_depth]
        best = best_on_select(mine)
        tried = sorted(r.config.train.epochs for r in mine)
        e = best.config.train.epochs
        edge = "" if len(tried) < 2 or tried[0] < e < tried[-1] else ("most" if e == tried[-1] else "fewest")
        out.append({"multiple": m, "train_tokens": run_train_tokens(best), "row": best, "epochs_tried": tried,
                    "edge": edge, "runs": mine})
    return out


def _downstream(p: BenchPreset, store, groups: dict, runs: list[RunRow], ev: Evaluations) -> dict:
    """Accuracy on the embedded task of each recipe (`groups`: name -> its runs, an ensemble when several)
    and of every run on the budget, with percentile intervals over items; and whether lower val loss goes
    with higher accuracy across those runs: Spearman's rho, its interval resampling items and runs together."""
    items = nextline.items(store, p.downstream_items)
    if not items:
        return {"task": nextline.TASK, "items": 0, "random": nextline.RANDOM_BASELINE, "recipes": {}, "runs": [],
                "correlation": None}
    ev.log(f"scoring {len(runs)} runs and {len(groups)} recipes on {len(items)} items of {nextline.TASK}")
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(items), size=(p.n_boot, len(items)))

    def accuracy(correct: np.ndarray) -> dict:
        draws = correct[picks].mean(axis=1)
        return {"value": float(correct.mean()), "low": float(np.quantile(draws, 0.025)),
                "high": float(np.quantile(draws, 0.975))}

    bar = ev.progress(f"scoring {nextline.TASK}", (len(groups) + len(runs)) * len(items), "items")

    def scored(rows: list) -> np.ndarray:
        correct = ev.nextline(rows, items)
        bar.add(len(items))
        return correct

    recipes = {name: accuracy(scored(rows)) for name, rows in groups.items()}
    table = np.stack([scored([r]) for r in runs]).astype(float)  # (runs, items)
    losses = np.array([r.val_loss for r in runs])
    correlation = None
    if len(runs) >= 4:
        rho = float(spearmanr(losses, table.mean(axis=1)).statistic)
        draws = []
        for b in range(p.n_boot):
            who = rng.integers(0, len(runs), size=len(runs))
            x, y = losses[who], table[who][:, picks[b]].mean(axis=1)
            if np.ptp(x) > 0 and np.ptp(y) > 0:
                draws.append(spearmanr(x, y).statistic)
        correlation = {"rho": rho, "low": float(np.quantile(draws, 0.025)) if draws else None,
                       "high": float(np.quantile(draws, 0.975)) if draws else None, "runs": len(runs)}
    return {"task": nextline.TASK, "items": len(items), "random": nextline.RANDOM_BASELINE, "recipes": recipes,
            "runs": [{"run_id": r.id, "val_loss": r.val_loss, "accuracy": float(a)}
                     for r, a in zip(runs, table.mean(axis=1))],
            "correlation": correlation}


def _standard_table(p: BenchPreset, standard: list[RunRow], ev: Evaluations) -> list[dict]:
    rows = [r for r in standard if r.config.tags["multiple"] == 1]
    return [{"depth": r.config.model.depth, "epochs": r.config.train.epochs,
             "params": r.summary["non_embedding_params"], "select_loss": r.select_loss,
             "val_loss": r.val_loss, "run_id": r.id, "row": r} for r in rows]


def _covers(m: Measured, ref_noise: SeedNoise, misfit: dict | None) -> dict:
    """What every multiple's interval covers, and what it leaves out."""
    seeds = m.noise.to_json_dict() if m.noise.df else None
    covers = ["val windows"] + (["seed noise"] if seeds else []) + (["reference law misfit"] if ref_noise.df > m.noise.df else [])
    leaves = ["data sample (bench --samples covers it)"] + ([] if seeds else ["seed noise (no setting repeated)"])
    return {"covers": covers, "leaves_out": leaves, "seed_noise": seeds, "reference_noise": ref_noise.to_json_dict(),
            "lack_of_fit": misfit}


def _disagreement(parametric, empirical) -> dict | None:
    """Where the parametric and empirical multiples differ beyond their paired draws: the interval of their ratio
    (None when it covers 1, or either is missing)."""
    if isinstance(parametric, Unfitted) or isinstance(empirical, Unfitted):
        return None
    a, b = parametric.data["aligned"]["efficiency"], empirical.data["aligned"]["efficiency"]
    both = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if both.sum() < 20:
        return None
    ratio = interval(parametric.value("efficiency") / empirical.value("efficiency"), a[both] / b[both])
    if ratio["low"] is None or ratio["low"] <= 1 <= ratio["high"]:
        return None
    return ratio
