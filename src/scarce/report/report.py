"""Reports people can look at: report.md, a self-contained report.html (PNGs embedded), plots/*.png and
tables/*.csv holding every number at full precision.

A report is a list of blocks (headings, paragraphs, tables, images) rendered twice, to Markdown and to
HTML, so the two never disagree. `write_bench_report` lays out a `scarce bench` result; `report` does
the same for any runs in the run store (`scarce report [--sweep S]`).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import itertools
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from scarce import atomic
from scarce.errors import UserError
from scarce.report.groups import line_label, run_groups, store_names, swept_lines, swept_value
from scarce.report.plots import (
    plot_against_field,
    plot_curves,
    plot_epochs,
    plot_fit,
    plot_k_curves,
    plot_loss_vs_compute,
    plot_members,
    plot_reference_points,
)
from scarce.rundir import is_run, read_config, read_metrics, read_summary
from scarce.runs.export import run_record
from scarce.runs.store import RunRow, RunStore, results_root
from scarce.scaling import fit_approach2, fit_power_law
from scarce.scaling.plan import device_hours

REPORT_RUN_COLUMNS = ("id", "sweep", "stage", "train_tokens", "epochs", "lr", "weight_decay", "dropout", "seed",
               "params", "tokens_seen", "flops", "select_loss", "val_loss", "val_bpb", "wall_seconds", "run_dir")


@dataclass
class Doc:
    """Blocks: ("h1"|"h2"|"p", text), ("table", columns, rows), ("img", relative path, caption)."""

    title: str
    blocks: list = field(default_factory=list)

    def h2(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, columns: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", columns, [[fmt(v) for v in r] for r in rows]))

    def img(self, path: str, caption: str) -> None:
        self.blocks.append(("img", path, caption))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b[0] == "h2":
                out += [f"## {b[1]}", ""]
            elif b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "table":
                out += ["| " + " | ".join(b[1]) + " |", "|" + "---|" * len(b[1])]
                out += ["| " + " | ".join(r) + " |" for r in b[2]] + [""]
            else:
                out += [f"![{Path(b[1]).stem}]({b[1]})", "", f"*{b[2]}*", ""]
        return "\n".join(out)

    def html(self, root: Path) -> str:
        """One page; images are embedded as data URIs, so the file can be mailed or opened anywhere."""
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for b in self.blocks:
            if b[0] in ("h2", "p"):
                body.append(f"<{b[0]}>{_inline(b[1])}</{b[0]}>")
            elif b[0] == "table":
                head = "".join(f"<th>{html.escape(c)}</th>" for c in b[1])
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in b[2])
                body.append(f'<input type="search" class="scarce-filter" placeholder="filter rows" '
                            f'aria-label="filter the rows of the table below">'
                            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            else:
                data = base64.b64encode((root / b[1]).read_bytes()).decode()
                body.append(f'<figure id="{Path(b[1]).stem}"><img alt="{html.escape(b[1])}" '
                            f'src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
        return PAGE.format(title=html.escape(self.title), body="\n".join(body))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; cursor: pointer; }} td:first-child, th:first-child {{ text-align: left; }}
th[aria-sort=ascending]::after {{ content: " \\25B2"; }} th[aria-sort=descending]::after {{ content: " \\25BC"; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ color: #555; font-size: 0.9em; }} code {{ background: #f3f3f3; padding: 0 0.2em; }}
.scarce-filter {{ display: block; margin-top: 0.8em; font-size: 0.85em; width: 16em; }}
</style></head><body>
{body}
<script>
/* Click a column header to sort its table by that column (numbers as numbers; again to reverse). */
function scarceCell(row, i) {{
  const text = row.cells[i].textContent.trim();
  const n = parseFloat(text.replace(/,/g, "").replace(/^[^0-9.+-]*/, ""));
  return {{text: text, n: isNaN(n) ? null : n}};
}}
function scarceSort(th) {{
  const table = th.closest("table"), body = table.tBodies[0], i = th.cellIndex;
  const rows = Array.from(body.rows), numeric = rows.every(r => scarceCell(r, i).n !== null);
  const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
  rows.sort((a, b) => {{
    const x = scarceCell(a, i), y = scarceCell(b, i);
    return dir * (numeric ? x.n - y.n : x.text.localeCompare(y.text));
  }});
  table.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  rows.forEach(r => body.appendChild(r));
}}
document.querySelectorAll("th").forEach(th => th.addEventListener("click", () => scarceSort(th)));
/* Type in the box above a table to keep the rows that contain every word typed (case ignored). */
function scarceFilter(box) {{
  const words = box.value.toLowerCase().split(/\\s+/).filter(w => w);
  Array.from(box.nextElementSibling.tBodies[0].rows).forEach(r => {{
    const text = r.textContent.toLowerCase();
    r.hidden = !words.every(w => text.includes(w));
  }});
}}
document.querySelectorAll(".scarce-filter").forEach(box => box.addEventListener("input", () => scarceFilter(box)));
</script>
</body></html>
"""


def _inline(text: str) -> str:
    """`code` spans and **bold** in paragraphs (the only Markdown the report's prose uses)."""
    parts = html.escape(text).split("`")
    text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def fmt(v) -> str:
    """Numbers for people: 4 decimals for losses, 3 significant digits for big counts."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
        if v.is_integer() and abs(v) < 1e5:
            return f"{int(v)}"  # epochs, counts: 4, not 4.0000
        return f"{v:.3g}" if abs(v) >= 1e5 or (v != 0 and abs(v) < 1e-3) else f"{v:.4f}"
    return str(v)


def interval(e: dict | None) -> str:
    """'2.31x [1.9, 3.0]' from {"value", "low", "high"} (None: unbounded or not fitted); ' (extrapolated)'
    is appended when the fit's warnings say D_ref lies outside the reference data."""
    if not e:
        return "-"
    if e.get("value") is None:
        if _unreachable(e):
            return "inf (below the reference asymptote)"
        return "n/a" if e.get("note") else "-"
    lo = "?" if e.get("low") is None else f"{e['low']:.3g}"
    hi = "inf" if e.get("high") is None else f"{e['high']:.3g}"
    return f"{e['value']:.3g}x [{lo}, {hi}]" + (" (extrapolated)" if extrapolated(e) else "")


def extrapolated(e: dict | None) -> bool:
    """Whether an efficiency estimate (as in bench.json) reads D_ref off the law or frontier beyond the data."""
    return any("extrapolat" in w for w in (e or {}).get("warnings", []))


def _unreachable(e: dict) -> bool:
    return any("never reaches" in w for w in e.get("warnings", []))


def write_csv(path: Path, columns: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    atomic.write_text(path, buf.getvalue())


def write_doc(out: Path, doc: Doc) -> Path:
    atomic.write_text(out / "report.md", doc.markdown())
    atomic.write_text(out / "report.html", doc.html(out))
    return out / "report.md"


# -- run rows ----------------------------------------------------------------------------------------

def store_rows(results: str | None, ids: list[str] | None = None, sweep: str | None = None) -> list[RunRow]:
    store = RunStore(results, read_only=True)  # a reader: the store is left as it was
    try:
        if ids is None:
            return store.list(sweep=sweep, status="done")
        rows = [store.get(i) for i in dict.fromkeys(ids)]
    finally:
        store.close()
    return [r for r in rows if r and r.status == "done"]


def write_runs_table(out: Path, records: list[dict]) -> None:
    write_csv(out / "tables" / "runs.csv", list(REPORT_RUN_COLUMNS), [[r[c] for c in REPORT_RUN_COLUMNS] for r in records])


def _plot_fit(fit, path: Path, **labels) -> bool:
    if fit is None or getattr(fit, "kind", "unfitted") == "unfitted":
        return False
    plot_fit(fit, path, **labels)
    return True


# -- the bench report --------------------------------------------------------------------------------

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
    _distillation_section(doc, out, result)
    _synthetic_section(doc, out, result, fits)
    _population_section(doc, out, result)
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
    if _plot_fit(fits.get("regularized_params"), out / "plots" / "regularized_params.png",
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
    if _plot_fit(fits.get("joint"), out / "plots" / "joint.png", title="joint limit"):
        doc.img("plots/joint.png", "Two-step joint fit: K to infinity at each size, then the asymptotes in N.")


def _distillation_section(doc: Doc, out: Path, result) -> None:
    d = result.distillation
    if not d:
        return
    doc.h2("Distillation at the largest size")
    rows = [["ensemble to student", d["student"]["val_loss"], d["student"]["run_id"]],
            ["self-distillation", d["self"]["val_loss"], d["self"]["run_id"]]]
    rows += [[f"chain member {i}", r["val_loss"], r["run_id"]] for i, r in enumerate(d["chain"])]
    doc.table(["run", "val_loss", "run_id"], rows)
    write_csv(out / "tables" / "distillation.csv", ["run", "val_loss", "run_id"], rows)


def _synthetic_section(doc: Doc, out: Path, result, fits: dict) -> None:
    syn = getattr(result, "synthetic", None)
    if not syn:
        return
    doc.h2("Students on generated text")
    doc.p(f"The largest size's ensemble writes {syn['mode']} text at temperature 1 (`scarce synth`); each student of "
          f"the chosen setting trains on the real budget mixed with it, a share {syn['frac']:g} of its batches "
          "synthetic (chosen on select among " + ", ".join(f"{t['frac']:g}" for t in syn["tuning"]) + ").")
    rows = [[int(m), s["generated_tokens"], s["select_loss"], s["val_loss"], s["run_id"]]
            for m, students in sorted(syn["students"].items(), key=lambda x: int(x[0])) for s in students]
    if syn.get("self"):
        rows.append(["self (one member writes)", "", syn["self"]["select_loss"], syn["self"]["val_loss"],
                     syn["self"]["run_id"]])
    cols = ["generated (x budget)", "generated_tokens", "select_loss", "val_loss", "run_id"]
    doc.table(cols, rows)
    write_csv(out / "tables" / "synthetic.csv", cols, rows)
    if _plot_fit(fits.get("synthetic"), out / "plots" / "synthetic.png", xlabel="generated tokens G",
                 ylabel="student val loss (nats/token)", title="Student against generated tokens"):
        doc.img("plots/synthetic.png", "The student's val loss against the tokens its teachers wrote, with the "
                "power law L(G) = E + A·G^(-alpha) and its 95% band (log-log); E is the loss with unlimited "
                "generated text of this kind.")
    else:
        doc.p("Student against generated tokens: not fitted (it needs at least 3 sizes of generation).")


def _population_section(doc: Doc, out: Path, result) -> None:
    pop = getattr(result, "population", None)
    if not pop:
        return
    traj, reach = pop["trajectories"], pop["reach_measured"]
    doc.h2("Population against the ensemble")
    doc.p(f"{len(traj)} cyclic trajectories of {traj[0]['epochs']:g} epochs at the chosen setting, cycles of "
          f"{pop['cycle_epochs']:g} epochs, each cycle end a member ({', '.join(f'{k}={v}' for k, v in pop['overrides'].items())}); "
          f"the learned prior is fitted on select at every point, its top-K chosen on select. The ensemble's "
          f"{len(pop['members'])} members reach {pop['reach']['prior']['target_loss']:.4f} with "
          f"{pop['reach']['prior']['target_epochs']:g} epochs; those epochs over the epochs the population (prior) "
          f"needs to reach it: {reach['value']:.2f} (95% [{reach['low']:.2f}, {reach['high']:.2f}], val windows and "
          "seed noise; 0 where it never reaches it)" + (f", censored {pop['reach']['prior']['censored']}."
                                                        if pop['reach']['prior']['censored'] else "."))
    rows = [["population", q["members"], q["epochs"], q["uniform_logit"], q["uniform_prob"], q["prior"], q["prior_k"]]
            for q in pop["population_curve"]]
    rows += [["ensemble", q["members"], q["epochs"], q["logit"], q["prob"], "", ""] for q in pop["independent_curve"]]
    cols = ["kind", "members", "total epochs", "val (uniform logit)", "val (uniform prob)", "val (prior)", "prior K"]
    doc.table(cols, rows)
    write_csv(out / "tables" / "population.csv", cols, rows)


def _recipe_text(name: str) -> str:
    if name == "standard":
        return "weight decay 0.1, no dropout, epochs chosen on select: the 1x reference run"
    if name == "regularized":
        return "the regularized setting best on select, one model"
    if name == "joint-limit":
        return "the two-step joint limit (infinitely many members of infinitely large models), extrapolated"
    if name == "synthetic-student":
        return ("one model of the chosen setting on the budget mixed with text the ensemble writes, the size of "
                "generation chosen on select")
    if name.startswith("synthetic-ensemble-k"):
        return f"{name[len('synthetic-ensemble-k'):]} such students (seeds) at the largest generation, logits averaged"
    if name.startswith("teachers+synthetic-k"):
        return (f"the teachers' ensemble with those students added ({name[len('teachers+synthetic-k'):]} models), "
                "logits averaged")
    if name.startswith("ensemble-k"):
        return f"the regularized setting best on select, trained with {name[len('ensemble-k'):]} seeds, logits averaged"
    if name == "population-prior":
        return ("cyclic trajectories at the chosen setting, as many epochs as the ensemble, their cycle-end snapshots "
                "weighed by a prior fitted on select (probability mixture, top-K chosen on select)")
    if name == "population-uniform":
        return "the same snapshots, logits averaged uniformly"
    return name


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
    if _plot_fit(fits.get("reference"), path, xlabel="unique train tokens", ylabel="val loss (nats/token)",
                 title="reference data-scaling law"):
        doc.img("plots/reference_law.png", "Reference law L(D) = E + A·D^(-alpha) (log-log) with its 95% band and the "
                "asymptote E with its interval; points are the best-on-select run per size. Grey: extrapolation.")
    else:
        plot_reference_points([r["train_tokens"] for r in ref], [r["val_loss"] for r in ref], path, "reference")
        doc.img("plots/reference_law.png", "Reference points (no law could be fitted).")
    for kind in ("parametric", "empirical"):
        name = f"efficiency_{kind}:{result.default_recipe}"
        if _plot_fit(fits.get(name), out / "plots" / f"efficiency_{kind}.png", xlabel="unique train tokens D",
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
    if _plot_fit(fits.get("k_scaling"), out / "plots" / "k_scaling.png", xlabel="ensemble members K",
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


# -- a report of any runs in the store --------------------------------------------------------------

def report(out: str | Path, results: str | None = None, sweep: str | None = None,
           compare: list[str] | None = None) -> Path:
    """Runs table, training curves, val loss against every swept config field, loss-vs-compute and, where the
    runs cover 3+ training-set sizes, the data-scaling law of the best-on-select run per size; with `compare`
    (run ids or run folders), their curves side by side and the settings that differ. Returns report.md's path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    have_store = (results_root(results) / "runs.db").is_file()  # a report never creates an empty run store
    compared = [_compared_row(c, results if have_store else None, have_store) for c in compare or []]
    rows = store_rows(results, sweep=sweep) if have_store else []
    if not rows and not compared:
        where = f" of sweep {sweep!r}" if sweep else ""
        raise UserError(f"no finished runs{where} in the run store; train some (scarce train / sweep / bench) first")
    (out / "plots").mkdir(parents=True, exist_ok=True)
    doc = Doc(f"scarce report{': ' + sweep if sweep else ''}")
    if compared:
        _compare_section(doc, out, compared)
    if rows:
        _store_sections(doc, out, rows, sweep)
    return write_doc(out, doc)


def _store_sections(doc: Doc, out: Path, rows: list[dict], sweep: str | None) -> None:
    records = [run_record(r) for r in rows]
    write_runs_table(out, records)
    doc.p(f"{len(records)} finished runs{' of sweep `' + sweep + '`' if sweep else ''}; all of them are in "
          "`tables/runs.csv`.")
    groups = run_groups(rows)
    names = store_names(data for data, _ in groups)
    _best_section(doc, groups, names)
    _curves_section(doc, out, groups, names)
    swept = _swept(rows)
    if swept:
        doc.h2("Swept settings")
        for name in swept:
            path = f"plots/field_{name.replace('.', '_')}.png"
            lines = [(line_label(fixed, names, width=80), [(swept_value(r, name), r.val_loss) for r in runs])
                     for fixed, runs in swept_lines(rows, name)]
            plot_against_field(lines, name, out / path)
            doc.img(path, f"Val loss against {name}: a line joins runs that differ in {name} alone, one line per "
                          "combination of the other settings that vary (token store and bench stage included); "
                          "grey points are runs no other run differs from in that alone.")
    doc.h2("Compute")
    plot_loss_vs_compute(records, out / "plots" / "loss_vs_compute.png")
    doc.img("plots/loss_vs_compute.png", "Val loss against training FLOPs of every run.")
    _isoflop_section(doc, out, rows)
    _ensembles_section(doc, out, rows)
    per_size = {}
    for r in records:
        if r["train_tokens"] and (r["train_tokens"] not in per_size or r["select_loss"] < per_size[r["train_tokens"]]["select_loss"]):
            per_size[r["train_tokens"]] = r
    if len(per_size) >= 3:
        doc.h2("Data scaling")
        sizes = sorted(per_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_power_law(sizes, [per_size[n]["val_loss"] for n in sizes])
        cols = ["train_tokens", "epochs", "weight_decay", "select_loss", "val_loss", "id"]
        doc.table(cols, [[per_size[n][c] for c in cols] for n in sizes])
        _plot_fit(fit, out / "plots" / "data_scaling.png", xlabel="unique train tokens",
                  ylabel="val loss (nats/token)", title="data scaling (best on select per size)")
        doc.img("plots/data_scaling.png", "Best-on-select run per training-set size with the fitted power law.")
        rows = [["data_scaling", k, v["value"], v["low"], v["high"]] for k, v in fit.to_json_dict().items()]
        doc.table(["fit", "estimate", "value", "low (2.5%)", "high (97.5%)"], rows)
        write_csv(out / "tables" / "fits.csv", ["fit", "estimate", "value", "low", "high"], rows)
        if fit.warnings:
            doc.p("Caveats: " + "; ".join(fit.warnings) + ".")


def _best_section(doc: Doc, groups: dict, names: dict[str, str]) -> None:
    """The best runs on select within each token store and stage: a reference run on 8x the data is not ranked
    against the runs on the budget."""
    doc.h2("Best runs on select")
    if len(groups) > 1:
        doc.p(f"The {BEST_PER_GROUP} best on select within each token store and stage ({len(groups)} groups); a "
              "run is ranked only against runs on the same data and of the same stage.")
    cols = ["id", "store", "stage", "rank", "train_tokens", "epochs", "weight_decay", "select_loss", "val_loss",
            "val_bpb", "flops"]
    table = []
    for (data, _), runs in groups.items():
        for rank, r in enumerate(runs[:BEST_PER_GROUP if len(groups) > 1 else BEST_ALONE], start=1):
            record = run_record(r)
            table.append([r.id, names[data], record["stage"], rank, *[record[c] for c in cols[4:]]])
    doc.table(cols, table)


def _curves_section(doc: Doc, out: Path, groups: dict, names: dict[str, str]) -> None:
    """Training curves of the best run of each group in turn (then the second best...), every one drawn; a run that
    logged too few points for a curve is named under the plot."""
    doc.h2("Training curves")
    ranked = [r for rank in itertools.zip_longest(*groups.values()) for r in rank if r is not None][:CURVES]
    labels = [f"{r.id} ({names[str(r.config.get('data', ''))]}, {r.tags.get('stage') or 'no stage'})" for r in ranked]
    short = plot_curves([(label, read_metrics(r.run_dir)) for label, r in zip(labels, ranked)],
                        out / "plots" / "curves.png", min_points=MIN_CURVE_POINTS)
    few = [r.id for label, r in zip(labels, ranked) if label in short]
    note = (f" Too few points logged for a curve (fewer than {MIN_CURVE_POINTS} train losses; a smaller "
            f"train.log_every logs more), drawn as points: {', '.join(few)}." if few else "")
    doc.img("plots/curves.png", f"Train loss (lines) and val loss at each evaluation (markers) of {len(ranked)} "
                                "runs, the best on select of each token store and stage first." + note)


CURVES = 8
"""Runs drawn in the training-curves plot (the best on select of each group in turn)."""
MIN_CURVE_POINTS = 3
"""Train losses a run must log for its curve to be a curve (a bench run logs a few: its log_every is long)."""
BEST_PER_GROUP = 3
BEST_ALONE = 10
"""Runs listed as best on select: per token store and stage when several, else of the one group."""
SWEPT_PLOTS = 6
"""At most this many swept settings get a plot."""
NOT_SWEPT = {"train.seed", "init.seed", "data"}
"""Fields that vary between runs without being a setting one tunes."""


def _isoflop_section(doc: Doc, out: Path, rows: list[dict]) -> None:
    """IsoFLOP curves and the compute-optimal size (Chinchilla approach 2) of the runs an IsoFLOP recipe tagged
    with their budget (`tags.budget`), when 2+ budgets hold 3+ sizes each."""
    runs = [r for r in rows if isinstance(r.config.get("tags", {}).get("budget"), (int, float))]
    budgets = {}
    for r in runs:
        budgets.setdefault(float(r.config["tags"]["budget"]), []).append(r)
    runs = [r for group in budgets.values() if len({x.config["model"]["depth"] for x in group}) >= 3 for r in group]
    if len({float(r.config["tags"]["budget"]) for r in runs}) < 2:
        return
    doc.h2("IsoFLOP")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_approach2([r.params for r in runs], [float(r.config["tags"]["budget"]) for r in runs],
                                [r.val_loss for r in runs])
    except UserError as e:
        doc.p(f"The IsoFLOP runs could not be fitted: {e}.")
        return
    _plot_fit(fit, out / "plots" / "isoflop.png")
    doc.img("plots/isoflop.png", "Left: val loss against parameters at each compute budget (tags.budget), a "
                                 "parabola in log N per budget and its minimum; right: the minima against compute "
                                 "with the fitted N_opt ∝ C^a.")
    rows_ = [["isoflop", k, v["value"], v["low"], v["high"]] for k, v in fit.to_json_dict().items()]
    doc.table(["fit", "estimate", "value", "low (2.5%)", "high (97.5%)"], rows_)
    if fit.warnings:
        doc.p("Caveats: " + "; ".join(fit.warnings) + ".")


def _ensembles_section(doc: Doc, out: Path, rows: list[dict]) -> None:
    """K-curves of the ensembles `scarce ensemble` made of these runs: members sit in ENS/members/mNN and the
    ensemble's evaluation in ENS/ensemble.json (every prefix k = 1..K on val)."""
    found = {}
    for r in rows:
        folder = Path(r.run_dir).parent.parent
        if r.config.get("tags", {}).get("group") and (folder / "ensemble.json").is_file():
            found.setdefault(folder, None)
    curves, table = [], []
    for folder in found:
        try:
            ens = json.loads((folder / "ensemble.json").read_text())
            prefix, members = ens["prefix_val_loss"], [m["val_loss"] for m in ens["members"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an ensemble.json of another split or a damaged one: not drawn
        curves.append((folder.name, prefix, members))
        table.append([folder.name, len(prefix), members[0], prefix[-1], members[0] - prefix[-1], ens.get("combine")])
    if not curves:
        return
    doc.h2("Ensembles")
    plot_k_curves(curves, out / "plots" / "ensembles.png")
    doc.img("plots/ensembles.png", "Val loss of the ensemble of the first k members against k (from each "
                                   "ensemble.json), and each member alone (faint).")
    doc.table(["ensemble", "K", "member 1", "all K", "gain (nats)", "combine"], table)


def flat_config(config: dict, prefix: str = "") -> dict:
    """A config's numeric fields as {dotted name: value} (the values `--set` takes)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = value
    return out


def _swept(rows: list[dict]) -> list[str]:
    """The numeric settings that take 2+ values across the runs, those of the most runs first."""
    values: dict[str, set] = {}
    for r in rows:
        for name, value in flat_config(r.config).items():
            values.setdefault(name, set()).add(value)
    swept = [n for n, v in values.items() if len(v) >= 2 and n not in NOT_SWEPT and not n.startswith("tags.")]
    return sorted(swept, key=lambda n: -len(values[n]))[:SWEPT_PLOTS]


def _compared_row(which: str, results: str | None, have_store: bool) -> RunRow:
    """A run to compare: its run-store row by id, else the run folder's config and summary."""
    if have_store:
        store = RunStore(results, read_only=True)
        try:
            row = store.get(which)
        finally:
            store.close()
        if row is not None and row.status == "done":
            return row
    if not is_run(which):
        raise UserError(f"--compare {which}: neither a run id in the run store nor a run directory")
    summary = read_summary(which)
    if summary is None:
        raise UserError(f"--compare {which}: the run is not finished (no summary.json); resume it first")
    return RunRow.of_folder(which, read_config(which).to_dict(), summary)


def _compare_section(doc: Doc, out: Path, rows: list[RunRow]) -> None:
    doc.h2("Compared runs")
    flats = [flat_config(r.config) for r in rows]
    names = sorted({n for f in flats for n in f if len({g.get(n) for g in flats}) > 1} - NOT_SWEPT)
    doc.table(["id", *names, "select_loss", "val_loss", "val_bpb"],
              [[r.id, *[f.get(n) for n in names], r.select_loss, r.val_loss, r.val_bpb]
               for r, f in zip(rows, flats)])
    if not names:
        doc.p("The compared runs have the same settings (other seeds or data aside).")
    plot_curves([(r.id, read_metrics(r.run_dir)) for r in rows], out / "plots" / "compare.png",
                title="compared runs")
    doc.img("plots/compare.png", "Train loss (lines) and val loss (markers) of the compared runs.")
