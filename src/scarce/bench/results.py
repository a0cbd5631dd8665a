"""Fits, data efficiency and the result of a bench: what bench.json and the report hold."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from scarce.bench.common import (
    Unfitted,
    brief,
    ensemble_json,
    estimate,
    fit_json,
    knobs,
    quietly,
    recipe_entry,
    tokens_per_window,
)
from scarce.bench.evaluations import Evaluations
from scarce.bench.findings import check_findings, hygiene_of
from scarce.bench.presets import BenchPreset
from scarce.bench.result import BenchResult
from scarce.bench.stages import best_on_select, train_tokens
from scarce.eval import nextline
from scarce.scaling import empirical_efficiency, fit_efficiency, fit_joint, fit_power_law
from scarce.scaling.paired import resampled_losses


def bench_results(p: BenchPreset, recipe: str, stores: dict, standard: list[dict], chosen: dict, single: list[dict],
                  ensembles: dict, distillation: dict | None, ev: Evaluations,
                  synthetic: dict | None = None) -> tuple[BenchResult, dict]:
    """The result and the fit objects (the report plots them)."""
    reference = _choose_reference(p, standard)
    ref_tokens = [r["train_tokens"] for r in reference]
    ref_loss = [r["row"].val_loss for r in reference]
    budget = reference[0]["train_tokens"]
    # intervals from the same resampled val windows for every model: the reference points and each recipe
    ref_windows = ev.windows([r["row"] for r in reference])
    tpw = tokens_per_window(reference[0]["row"])
    fits: dict = {"reference": quietly(fit_power_law, ref_tokens, ref_loss,
                                       y_draws=resampled_losses(ref_windows, tpw, p.n_boot))}
    ens_evals = {d: ev.ensemble(rows, f"d{d}") for d, rows in ensembles.items()}
    recipes = {"standard": recipe_entry(reference[0]["row"].val_loss, reference[0]["row"].val_bpb,
                                        reference[0]["row"].flops, [reference[0]["row"].id])}
    windows = {"standard": ref_windows[0]}
    best_reg = min(chosen.values(), key=lambda c: c["row"].select_loss)["row"]
    recipes["regularized"] = recipe_entry(best_reg.val_loss, best_reg.val_bpb, best_reg.flops, [best_reg.id])
    windows["regularized"] = ev.windows([best_reg])[0]
    default = "regularized"
    if ens_evals:
        e = ens_evals[p.largest]
        k = len(e["rows"])
        default = f"ensemble-k{k}"
        recipes[default] = recipe_entry(e["prefix_val_loss"][-1], e["prefix_val_bpb"][-1],
                                        sum(r["flops"] for r in e["rows"]), [r["id"] for r in e["rows"]])
        windows[default] = ev.prefixes(e["rows"])[-1]
        if k >= 3:  # intervals from the losses on resampled val windows (3-4 points say little otherwise)
            draws = resampled_losses(ev.prefixes(e["rows"]), tokens_per_window(e["rows"][0]), p.n_boot)
            fits["k_scaling"] = quietly(fit_power_law, list(range(1, k + 1)), e["prefix_val_loss"], y_draws=draws)
    if len(p.sizes) >= 3:
        rows = [chosen[d]["row"] for d in p.sizes]
        draws = resampled_losses(ev.windows(rows), tokens_per_window(rows[0]), p.n_boot)
        fits["regularized_params"] = quietly(fit_power_law, [r.summary["non_embedding_params"] for r in rows],
                                             [r["val_loss"] for r in rows], y_draws=draws)
    if p.joint and len(ens_evals) >= 3 and all(len(e["rows"]) >= 3 for e in ens_evals.values()):
        n, k, loss = [], [], []
        for e in ens_evals.values():
            for i, value in enumerate(e["prefix_val_loss"]):
                n.append(e["rows"][0]["summary"]["non_embedding_params"])
                k.append(i + 1)
                loss.append(value)
        fits["joint"] = quietly(fit_joint, n, k, loss, n_boot=p.n_boot)
    if "joint" in fits and not isinstance(fits["joint"], Unfitted):
        limit = fits["joint"].estimates["E"]
        recipes["joint-limit"] = recipe_entry(limit.value, None, None, [])
    if synthetic:
        add_synthetic(p, synthetic, ev, recipes, windows, fits, ens_evals[p.largest]["rows"] if ens_evals else [])
    for name, entry in recipes.items():
        draws = None
        if name in windows:  # the joint limit is a fitted number, not a model on val windows
            draws = resampled_losses(np.vstack([ref_windows, windows[name]]), tpw, p.n_boot)
        for kind, fn in (("parametric", fit_efficiency), ("empirical", empirical_efficiency)):
            fit = quietly(fn, ref_tokens, ref_loss, entry["val_loss"], budget, n_boot=p.n_boot, loss_draws=draws)
            fits[f"efficiency_{kind}:{name}"] = fit
            entry["efficiency"][kind] = estimate(fit, "efficiency")
    std_table = _standard_table(p, standard, ev)
    findings = check_findings(p, std_table, chosen, fits, recipes, ens_evals, distillation, ev, reference, default,
                              synthetic)
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
                    "epochs": r["row"].config["train"]["epochs"], "epochs_tried": r["epochs_tried"],
                    "edge": r["edge"], "val_loss": r["row"].val_loss, "val_bpb": r["row"].val_bpb,
                    "select_loss": r["row"].select_loss, "flops": r["row"].flops} for r in reference],
        single=[{"run_id": r.id, "chosen": any(r.id == c["row"].id for c in chosen.values()), **knobs(r),
                 **{c: r[c] for c in ("val_loss", "val_bpb", "select_loss", "flops")}} for r in single],
        ensemble=None if not ens_evals else ensemble_json(ens_evals[p.largest]),
        ensembles={str(d): ensemble_json(e) for d, e in ens_evals.items()},
        findings=findings, standard=[{k: v for k, v in r.items() if k != "row"} for r in std_table],
        regularized=[{"depth": d, "best": c["descent"]["best"], "select_loss": c["descent"]["loss"],
                      "val_loss": c["row"].val_loss, "certified": c["descent"]["certified"],
                      "evaluations": c["descent"]["evaluations"], "certificate": c["descent"]["certificate"],
                      "run_id": c["row"].id, "params": c["row"].summary["non_embedding_params"]}
                     for d, c in chosen.items()],
        distillation=None if distillation is None else {
            "student": brief(distillation["student"]), "self": brief(distillation["self"]),
            "chain": [brief(r) for r in distillation["chain"]]},
        synthetic=None if synthetic is None else synthetic_json(synthetic),
        hygiene=hygiene_of(reference, findings, std_table, chosen, ev, p.n_boot), downstream=downstream, smoke=p.smoke)
    return result, fits


def _choose_reference(p: BenchPreset, standard: list[dict]) -> list[dict]:
    """Per size of data: the reference size's run best on select (epochs chosen on select, never val),
    flagged when the chosen epochs sit at an edge of the grid tried."""
    out = []
    for m in p.multiples:
        mine = [r for r in standard if r.config["tags"]["multiple"] == m
                and r.config["model"]["depth"] == p.reference_depth]
        best = best_on_select(mine)
        tried = sorted(r.config["train"]["epochs"] for r in mine)
        e = best.config["train"]["epochs"]
        edge = "" if len(tried) < 2 or tried[0] < e < tried[-1] else ("most" if e == tried[-1] else "fewest")
        out.append({"multiple": m, "train_tokens": train_tokens(best), "row": best, "epochs_tried": tried,
                    "edge": edge})
    return out


def _downstream(p: BenchPreset, store, groups: dict, runs: list[dict], ev: Evaluations) -> dict:
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

    recipes = {name: accuracy(ev.nextline(rows, items)) for name, rows in groups.items()}
    table = np.stack([ev.nextline([r], items) for r in runs]).astype(float)  # (runs, items)
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
            "runs": [{"run_id": r["id"], "val_loss": r["val_loss"], "accuracy": float(a)}
                     for r, a in zip(runs, table.mean(axis=1))],
            "correlation": correlation}


def _standard_table(p: BenchPreset, standard: list[dict], ev: Evaluations) -> list[dict]:
    rows = [r for r in standard if r.config["tags"]["multiple"] == 1]
    return [{"depth": r.config["model"]["depth"], "epochs": r.config["train"]["epochs"],
             "params": r.summary["non_embedding_params"], "select_loss": r.select_loss,
             "val_loss": r.val_loss, "run_id": r.id, "row": r} for r in rows]


def add_synthetic(p: BenchPreset, synthetic: dict, ev: Evaluations, recipes: dict, windows: dict, fits: dict,
                  teachers: list | None = None) -> None:
    """Recipes from the synthetic stage: the student chosen on select among the generated sizes, the ensemble of
    the students at the largest size when there are several, the teachers' ensemble with those students added
    (teachers first); and the student's val loss against generated
    tokens as a power law (three sizes or more), its interval from resampled val windows."""
    firsts = {int(m): rows[0] for m, rows in synthetic["students"].items()}
    best = min(firsts.values(), key=lambda r: r["select_loss"])
    recipes["synthetic-student"] = recipe_entry(best["val_loss"], best["val_bpb"], best["flops"], [best["id"]])
    windows["synthetic-student"] = ev.windows([best])[0]
    top = synthetic["students"][max(synthetic["students"], key=int)]
    if len(top) > 1:
        e = ev.ensemble(top, "synthetic")
        name = f"synthetic-ensemble-k{len(top)}"
        recipes[name] = recipe_entry(e["prefix_val_loss"][-1], e["prefix_val_bpb"][-1], sum(r["flops"] for r in top),
                                     [r["id"] for r in top])
        windows[name] = ev.prefixes(top)[-1]
    if teachers:
        both = list(teachers) + list(top)
        e = ev.ensemble(both, "teachers-synthetic")
        name = f"teachers+synthetic-k{len(both)}"
        recipes[name] = recipe_entry(e["prefix_val_loss"][-1], e["prefix_val_bpb"][-1], sum(r["flops"] for r in both),
                                     [r["id"] for r in both])
        windows[name] = ev.prefixes(both)[-1]
    if len(firsts) >= 3:
        ms = sorted(firsts)
        draws = resampled_losses(ev.windows([firsts[m] for m in ms]), tokens_per_window(best), p.n_boot)
        fits["synthetic"] = quietly(fit_power_law, [m * synthetic["budget"] for m in ms],
                                    [firsts[m]["val_loss"] for m in ms], y_draws=draws)


def synthetic_json(synthetic: dict) -> dict:
    return {"mode": synthetic["mode"], "frac": synthetic["frac"], "tuning": synthetic["tuning"],
            "budget": synthetic["budget"],
            "students": {str(m): [{**brief(r), "generated_tokens": int(m) * synthetic["budget"]} for r in rows]
                         for m, rows in synthetic["students"].items()},
            "self": None if synthetic["self"] is None else brief(synthetic["self"])}
