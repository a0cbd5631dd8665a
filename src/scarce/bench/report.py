"""The bench's report: report.md, report.html, plots/ and tables/ for a `scarce bench` result (`BenchResult`)
and its fit objects, one section per stage, built from `scarce.report`'s blocks (`Doc`) and helpers."""

from __future__ import annotations

from pathlib import Path

from scarce.bench.stage import STAGES
from scarce.report.plots import plot_epochs, plot_loss_vs_compute, plot_members, plot_reference_points
from scarce.report.report import (
    Doc,
    extrapolated,
    interval,
    plot_fit_of,
    store_rows,
    write_csv,
    write_doc,
    write_runs_table,
)
from scarce.runs.export import run_record
from scarce.scaling.plan import device_hours


def write_bench_report(out: str | Path, result, fits: dict, results: str | None = None) -> Path:
    """report.md, report.html, plots/ and tables/ for a `scarce bench` result (a `scarce.bench.BenchResult`)
    and its fit objects; returns report.md's path."""
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    records = [run_record(r) for r in store_rows(results, result.run_ids)]
    write_runs_table(out, records)
    doc = Doc(f"scarce bench: {result.preset}")
    _headline(doc, result, records)
    _findings_section(doc, out, result)
    _recipes_section(doc, out, result)
    _standard_section(doc, out, result)
    _reference_section(doc, out, result, fits)
    _regularized_section(doc, out, result, fits)
    _recipe_section(doc, out, result)
    _ensemble_section(doc, out, result, fits)
    _joint_section(doc, out, result, fits)
    for stage in STAGES:
        stage.report(doc, out, result.stages.get(stage.json_key()), fits)
    doc.h2("Compute")
    plot_loss_vs_compute(records, out / "plots" / "loss_vs_compute.png", result.ensemble)
    doc.img("plots/loss_vs_compute.png", "Val loss against training FLOPs (log scale) of every run of the bench; "
                                         "the ensemble line puts the first k members at their summed FLOPs.")
    doc.p(f"{len(records)} runs, {result.token_passes:,} training tokens in all; every run's numbers are in "
          f"`tables/runs.csv` (as recorded in the run store {result.results}).")
    _fits_section(doc, out, result)
    return write_doc(out, doc)


def _headline(doc: Doc, result, records: list[dict]) -> None:
    """The answer first: which recipe is the default, its loss, and its data-efficiency multiple with the
    95% interval, flagged where it is read off the reference beyond its data."""
    if result.smoke:
        doc.p(f"**Smoke test**: `{result.preset}` checks that the pipeline runs end to end in minutes; its budget "
              "and models are too small for the findings below to mean anything. `cpu-small` and `cpu-full` "
              "measure them.")
    cpt = getattr(result, "cpt", None)
    if cpt:
        doc.p(f"**Continued pretraining.** Every run starts from a model pretrained on `{cpt['pretrain_corpus']}` "
              f"({cpt['pretrain_tokens']:,} tokens, {cpt['pretrain_epochs']:g} epoch(s); val loss there "
              f"{cpt['base_val_loss_pretrain_corpus']:.4f}) and continues on `{cpt['corpus']}`, where it starts at "
              f"val loss {cpt['base_val_loss']:.4f}. The standard recipe below is the standard CPT (weight decay "
              "0.1, epochs tuned on select at every size of data); the recipes are regularized and ensemble CPT.")
    default = result.default_recipe
    r, std = result.recipes[default], result.recipes["standard"]
    eff = result.efficiency
    par, emp = eff.get("parametric"), eff.get("empirical")
    doc.p(f"**Default recipe: `{default}`** ({_recipe_text(default)}). On the fixed budget of "
          f"**{result.budget_tokens:,} unique train tokens** it reaches val loss **{r['val_loss']:.4f}** nats/token "
          f"({r['val_bpb']:.4f} bits/byte); the standard recipe on the same tokens reaches {std['val_loss']:.4f}.")
    disagree = r.get("disagree")
    doc.p(f"**Data-efficiency multiple of `{default}` over the standard recipe: {interval(par)}** "
          "(value [95% interval]; parametric: the inverted reference law). The standard recipe would need about "
          f"that many times the unique data to reach the same val loss. Empirical frontier (no law, interpolated "
          f"between reference runs): {interval(emp)}."
          + ("" if not disagree else f" **The two readings disagree** beyond their paired intervals (parametric / "
             f"empirical {disagree['value']:.2f} [{disagree['low']:.2f}, {disagree['high']:.2f}]): the reference "
             "runs do not lie on their law, so the multiple depends on how the reference curve is read."))
    for w in getattr(result, "warnings", None) or []:
        doc.p(f"**Warning:** {w}.")
    flagged = [k for k, e in (("parametric", par), ("empirical", emp)) if extrapolated(e)]
    if flagged:
        top = max(x["train_tokens"] for x in result.reference)
        doc.p(f"**Extrapolated** ({', '.join(flagged)}): the default recipe's val loss lies outside the reference "
              f"runs' losses, so D_ref is read off the fitted law or the frontier's end segment beyond the data "
              f"(largest reference size {top:,} tokens). Treat the multiple as a model-based estimate.")
    trained = result.run_seconds or sum(x["wall_seconds"] or 0 for x in records)  # a branch's shared steps once
    seed = getattr(result, "data_seed", 0)
    iv = getattr(result, "intervals", None) or {}
    covers = ", ".join(iv.get("covers", [])) or "the val windows and the fits"
    seeds = iv.get("seed_noise")
    seed_text = ("" if not seeds else f" Seed noise: sd {seeds['seed_sd']:.4f} nats per run (from {seeds['groups']} "
                 f"repeated setting(s), {seeds['df']} degrees of freedom), drawn for every run.")
    lof = iv.get("lack_of_fit")
    lof_text = ("" if not lof else f" The reference points' residuals against their law, tested against the seed noise:"
                f" F {lof['F']:.2f}, p {lof['p']:.3g}; pooled into the reference points' noise.")
    doc.p(f"**The sample.** {'Data seed ' + str(seed) + ': a' if seed else 'A'} fixed draw of documents from the "
          f"corpus (`scarce prepare --seed`, `scarce bench --data-seed`). The intervals here cover {covers}, not which "
          "documents were drawn: at a budget this small another draw can move the multiples by more than their "
          f"intervals; `scarce bench --samples` repeats the bench over data seeds and covers it.{seed_text}{lof_text}")
    doc.p(f"Intervals are 95% percentile-bootstrap intervals over paired draws. Wall time of the `scarce "
          f"bench` call that wrote this report: {result.wall_seconds / 60:.1f} min (runs already in the run store "
          f"are not retrained); the {len(records)} runs trained for {trained / 60:.1f} process-minutes in all.")


def verdict_of(f: dict) -> str:
    """A finding's verdict; bench.json written before verdicts has only `reproduced` (true, false or null)."""
    return f.get("verdict") or {True: "reproduced", False: "not reproduced"}.get(f.get("reproduced"), "not shown")


def _findings_section(doc: Doc, out: Path, result) -> None:
    """Each published finding, reproduced or not, with its number, interval and the published number."""
    if not result.findings:
        return
    doc.h2("Findings")
    cols = ["finding", "", "verdict", "value", "95% interval", "unit", "published"]
    rows = [[f["id"], f["name"], verdict_of(f), f["value"], _ci(f), f["unit"], f["published"]]
            for f in result.findings]
    doc.table(cols, rows)
    doc.p("A finding reads *reproduced* only where its 95% interval clears the paper's claim, *not reproduced* where "
          "it lies on the wrong side, *not shown* where it straddles the criterion, *not identified* where its number "
          "comes from a fit at a bound (docs/bench.md: each finding's criterion and protocol).")
    write_csv(out / "tables" / "findings.csv", ["id", "name", "verdict", "value", "low", "high", "unit", "published",
                                                 "detail"],
              [[f["id"], f["name"], verdict_of(f), f["value"], f["low"], f["high"], f["unit"], f["published"],
                f["detail"]] for f in result.findings])
    doc.p("; ".join(f"**{f['id']}**: {f['detail']}" for f in result.findings) + ".")
    h = result.hygiene
    if h:
        se, overfit = h.get("paired_difference_se"), h.get("overfit_difference_se")
        pairs = ", ".join(f"depth {d['depth']} {d['value']:+.3f} (SE {d['se']:.4f})" for d in h.get("paired_differences", [])
                          if d.get("se") is not None)
        doc.p(f"Measurement hygiene: |select - val| on the reference runs {h['select_val_gap_mean']:.3f} on average, "
              f"{h['select_val_gap_max']:.3f} at most (the splits should agree within 0.05 nats); standard error of a "
              f"paired loss difference on val between two settings (the standard recipe's best against the "
              f"regularized recipe's, per size{': ' + pairs if pairs else ''}) {'-' if se is None else f'{se:.4f}'} "
              f"nats at most (target 0.01; moving-block bootstrap over val windows); finding 1's larger contrast "
              f"{'-' if overfit is None else f'{overfit:.4f}'}.")


def _ci(f: dict) -> str:
    if f.get("low") is None and f.get("high") is None:
        return "-"
    lo = "-inf" if f.get("low") is None else f"{f['low']:.4g}"
    hi = "inf" if f.get("high") is None else f"{f['high']:.4g}"
    return f"[{lo}, {hi}]"


def _standard_section(doc: Doc, out: Path, result) -> None:
    if not result.standard:
        return
    doc.h2("The standard recipe on the fixed budget")
    cols = ["depth", "params", "epochs", "select_loss", "val_loss", "run_id"]
    rows = [[r[c] for c in cols] for r in sorted(result.standard, key=lambda r: (r["depth"], r["epochs"]))]
    doc.table(cols, rows)
    write_csv(out / "tables" / "standard.csv", cols, rows)
    plot_epochs(result.standard, out / "plots" / "standard_epochs.png")
    doc.img("plots/standard_epochs.png", "Val loss against epochs of the standard recipe (weight decay 0.1) on the "
            "fixed budget, one line per model size: overfitting shows as a minimum inside the grid.")


def _regularized_section(doc: Doc, out: Path, result, fits: dict) -> None:
    if not result.regularized:
        return
    doc.h2("The regularized recipe: certified descent per size")
    cols = ["depth", "params", "lr", "weight_decay", "epochs", "select_loss", "val_loss", "certified", "evaluations"]
    rows = [[r["depth"], r["params"], r["best"]["optim.lr"], r["best"]["optim.weight_decay"], r["best"]["train.epochs"],
             r["select_loss"], r["val_loss"], r["certified"], r["evaluations"]] for r in result.regularized]
    doc.table(cols, rows)
    write_csv(out / "tables" / "regularized.csv", cols, rows)
    if plot_fit_of(fits.get("regularized_params"), out / "plots" / "regularized_params.png",
                 xlabel="non-embedding parameters N", ylabel="val loss (nats/token)",
                 title="regularized recipe: L(N) = E + A·N^-alpha"):
        doc.img("plots/regularized_params.png", "The regularized recipe's val loss against parameters with its power "
                "law, 95% band and asymptote E.")


def _joint_section(doc: Doc, out: Path, result, fits: dict) -> None:
    if len(result.ensembles) < 2:
        return
    doc.h2("Joint scaling: ensembles at every size")
    cols = ["depth", "k", "ensemble_val_loss"]
    rows = [[d, i + 1, v] for d, e in result.ensembles.items() for i, v in enumerate(e["prefix_val_loss"])]
    doc.table(cols, rows)
    write_csv(out / "tables" / "joint.csv", cols, rows)
    if plot_fit_of(fits.get("joint"), out / "plots" / "joint.png", title="joint limit"):
        doc.img("plots/joint.png", "Two-step joint fit: K to infinity at each size, then the asymptotes in N.")


def _recipe_text(name: str) -> str:
    if name == "standard":
        return "weight decay 0.1, no dropout, epochs chosen on select: the 1x reference run"
    if name == "regularized":
        return "the regularized setting best on select, one model"
    if name == "joint-limit":
        return "the two-step joint limit (infinitely many members of infinitely large models), extrapolated"
    if name.startswith("ensemble-k"):
        return f"the regularized setting best on select, trained with {name[len('ensemble-k'):]} seeds, logits averaged"
    return next((text for stage in STAGES if (text := stage.describe(name))), name)


def _recipes_section(doc: Doc, out: Path, result) -> None:
    doc.h2("Results")
    default = result.default_recipe
    down = getattr(result, "downstream", None) or {}
    cols = ["recipe", "val loss (nats/token)", "bits/byte", "data efficiency, parametric [95% CI]",
            "data efficiency, empirical [95% CI]", "training FLOPs"]
    if down.get("items"):
        cols.append(f"{down['task']} accuracy [95% CI]")
    cost = getattr(result, "cost", None)
    if cost:
        cols += ["device-hours"] + (["dollars"] if cost.get("price") else [])
    rows, csv_rows = [], []
    for name, r in result.recipes.items():
        e = r["efficiency"]
        rows.append([name + (" (default)" if name == default else ""), r["val_loss"], r["val_bpb"],
                     interval(e.get("parametric")), interval(e.get("empirical")), r["flops"]])
        if down.get("items"):
            a = r.get("downstream")
            rows[-1].append(f"{a['value']:.3f} [{a['low']:.3f}, {a['high']:.3f}]" if a else "-")
        hours = None if not cost or r["flops"] is None else device_hours(r["flops"], cost["flops_per_s"], cost["mfu"])
        dollars = None if hours is None or not cost.get("price") else hours * cost["price"]
        if cost:
            rows[-1] += [hours] + ([dollars] if cost.get("price") else [])
        csv_rows.append([name, name == default, r["val_loss"], r["val_bpb"], r["flops"]]
                        + [(e.get(k) or {}).get(f) for k in ("parametric", "empirical") for f in ("value", "low", "high")]
                        + [extrapolated(e.get(k)) for k in ("parametric", "empirical")]
                        + [(r.get("downstream") or {}).get(f) for f in ("value", "low", "high")] + [hours, dollars])
    doc.table(cols, rows)
    if down.get("items"):
        doc.p(_downstream_text(down))
    if cost:
        doc.p(f"Device-hours: training FLOPs / ({cost.get('gpu') or 'the device'}'s peak {cost['flops_per_s']:.3g} "
              f"FLOP/s x MFU {cost['mfu']:g}) / 3600, the cost on any number of such devices"
              + (f"; dollars at ${cost['price']:g} a device-hour." if cost.get("price") else ".")
              + " A recipe's FLOPs include every member it averages; the runs tried to choose its settings are not "
                "counted.")
    doc.p("Every recipe trains on the same fixed budget of unique tokens. " + "; ".join(
        f"`{n}`: {_recipe_text(n)}" for n in result.recipes) + ". Data efficiency = D_ref(L) / D: the unique "
        "tokens the standard recipe needs to reach the same val loss L, over the budget D (the standard recipe is "
        "about 1x by construction). `inf` as an upper end means some refits put the reference asymptote above the "
        "loss; `(extrapolated)` means D_ref lies beyond the reference runs.")
    write_csv(out / "tables" / "recipes.csv",
              ["recipe", "default", "val_loss", "val_bpb", "flops", "eff_parametric", "eff_parametric_low",
               "eff_parametric_high", "eff_empirical", "eff_empirical_low", "eff_empirical_high",
               "eff_parametric_extrapolated", "eff_empirical_extrapolated", "downstream_acc", "downstream_acc_low",
               "downstream_acc_high", "device_hours", "dollars"], csv_rows)


def _downstream_text(down: dict) -> str:
    """What the downstream column is and whether lower val loss went with higher accuracy."""
    text = (f"Downstream: `{down['task']}` (pick the true next line among 4, {down['items']} items from the val "
            f"split; random {down['random']:.2f}), accuracy with a 95% interval over items; an ensemble "
            f"scores its logit average. ")
    c = down.get("correlation")
    if not c:
        return text + "Too few runs for a rank correlation."
    sign = "lower val loss goes with higher accuracy" if c["high"] is not None and c["high"] < 0 else (
        "no clear relation between val loss and accuracy" if c["low"] is None or c["low"] < 0 < c["high"]
        else "lower val loss goes with LOWER accuracy")
    bounds = "" if c["low"] is None else f" [{c['low']:.2f}, {c['high']:.2f}]"
    return text + (f"Across the {c['runs']} runs on the budget, Spearman's rho(val loss, accuracy) = "
                   f"{c['rho']:.2f}{bounds} (interval resampling items and runs): {sign}.")


def _reference_section(doc: Doc, out: Path, result, fits: dict) -> None:
    doc.h2("Reference: the standard recipe at several data sizes")
    ref = result.reference
    cols = ["multiple", "train_tokens", "epochs", "select_loss", "val_loss", "val_bpb", "flops", "run_id"]
    doc.table(cols, [[r[c] for c in cols] for r in ref])
    write_csv(out / "tables" / "reference.csv", cols, [[r[c] for c in cols] for r in ref])
    path = out / "plots" / "reference_law.png"
    if plot_fit_of(fits.get("reference"), path, xlabel="unique train tokens", ylabel="val loss (nats/token)",
                 title="reference data-scaling law"):
        doc.img("plots/reference_law.png", "Reference law L(D) = E + A·D^(-alpha) (log-log) with its 95% band and the "
                "asymptote E with its interval; points are the best-on-select run per size. Grey: extrapolation.")
    else:
        plot_reference_points([r["train_tokens"] for r in ref], [r["val_loss"] for r in ref], path, "reference")
        doc.img("plots/reference_law.png", "Reference points (no law could be fitted).")
    for kind in ("parametric", "empirical"):
        name = f"efficiency_{kind}:{result.default_recipe}"
        if plot_fit_of(fits.get(name), out / "plots" / f"efficiency_{kind}.png", xlabel="unique train tokens D",
                     ylabel="val loss (nats/token)", title=f"{result.default_recipe} ({kind})"):
            how = "the fitted reference law with its 95% band" if kind == "parametric" else \
                "the reference's best-loss frontier, interpolated in log-log"
            doc.img(f"plots/efficiency_{kind}.png",
                    f"Data efficiency of {result.default_recipe} ({kind}): the star is the recipe at its budget; "
                    f"the arrow runs to D_ref, where {how} reaches the same val loss. Grey: beyond the reference data.")


def _recipe_section(doc: Doc, out: Path, result) -> None:
    doc.h2("Every regularized run on the fixed budget")
    cols = ["depth", "architecture", "epochs", "weight_decay", "dropout", "lr", "select_loss", "val_loss", "val_bpb",
            "chosen", "run_id"]
    defaults = {"architecture": "baseline", "depth": None}  # older bench.json lacks these
    rows = [[r.get(c, defaults.get(c)) for c in cols] for r in result.single]
    doc.table(cols, rows)
    write_csv(out / "tables" / "recipe.csv", cols, rows)
    doc.p("The setting kept is the one with the lowest **select** loss; val is only reported.")


def _ensemble_section(doc: Doc, out: Path, result, fits: dict) -> None:
    ens = result.ensemble
    if not ens:
        return
    doc.h2("Ensemble")
    k = len(ens["member_ids"])
    cols = ["k", "ensemble_val_loss", "ensemble_val_bpb", "member_val_loss", "member_val_bpb", "member_flops",
            "member_id"]
    rows = [[i + 1, ens["prefix_val_loss"][i], ens["prefix_val_bpb"][i], ens["member_val_loss"][i],
             ens["member_val_bpb"][i], ens["member_flops"][i], ens["member_ids"][i]] for i in range(k)]
    doc.table(cols, rows)
    write_csv(out / "tables" / "ensemble.csv", cols, rows)
    plot_members(ens, out / "plots" / "members.png")
    doc.img("plots/members.png", "Each member alone and the logit-averaged ensemble of the first k members.")
    if plot_fit_of(fits.get("k_scaling"), out / "plots" / "k_scaling.png", xlabel="ensemble members K",
                 ylabel="val loss (nats/token)", title="K-scaling of the ensemble", left=1.0, counts=True):
        doc.img("plots/k_scaling.png", "K-scaling law L(K) = E + A·K^(-alpha) of the ensemble (log-log) with its 95% "
                "band; E is the infinite-ensemble loss. Grey: more members than were trained (extrapolated).")
    else:
        doc.p("K-scaling law: not fitted (it needs at least 3 members).")


def _fits_section(doc: Doc, out: Path, result) -> None:
    doc.h2("Fits")
    rows, notes = [], []
    for name, f in result.fits.items():
        if f["kind"] == "unfitted":
            notes.append(f"{name}: not fitted ({f['reason']})")
            continue
        rows += [[name, est, v["value"], v["low"], v["high"]] for est, v in f["estimates"].items()]
        notes += [f"{name}: {w}" for w in f["warnings"]]
    # on the page, the efficiency fits' copies of the reference law's E, A, alpha are left out (tables/fits.csv
    # has them); numbers get 4 significant digits (D_ref is a token count, A can be large)
    shown = [_bounds(r) for r in rows if not (r[0].startswith("efficiency_") and r[1] in ("E", "A", "alpha"))]
    doc.table(["fit", "estimate", "value", "low (2.5%)", "high (97.5%)"],
              [r[:2] + [f"{v:.4g}" if isinstance(v, float) else v for v in r[2:]] for r in shown])
    write_csv(out / "tables" / "fits.csv", ["fit", "estimate", "value", "low", "high"], rows)
    doc.p("Every fit's estimates with their 95% bootstrap interval. `efficiency_*:R` is recipe R's data efficiency "
          "(D_ref in unique tokens); `reference` is L(D) = E + A·D^(-alpha) of the standard recipe; `k_scaling` is "
          "L(K) of the ensemble. An infinite end means some refits never reach the loss; `-`: not estimated.")
    if notes:
        doc.p("Caveats: " + "; ".join(dict.fromkeys(notes)) + ".")


def _bounds(row: list) -> list:
    """A fits row for people: a missing interval end next to a finite value is an infinite one (JSON has no inf)."""
    name, est, value, low, high = row
    if value is None or (low is None and high is None):
        return row
    return [name, est, value, "-inf" if low is None else low, "inf" if high is None else high]
