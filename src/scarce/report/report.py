"""Reports people can look at: report.md, a self-contained report.html (PNGs embedded), plots/*.png and
tables/*.csv holding every number at full precision.

A report is a list of blocks (headings, paragraphs, tables, images) rendered twice, to Markdown and to
HTML, so the two never disagree. `report` lays out any runs in the run store (`scarce report [--sweep S]`); the
bench's own sections are `scarce.bench.report`'s, built from the blocks and helpers here.
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
    plot_fit,
    plot_k_curves,
    plot_loss_vs_compute,
)
from scarce.rundir import is_run, read_config, read_metrics, read_summary
from scarce.runs.export import run_record
from scarce.runs.store import RunRow, RunStore, results_root
from scarce.scaling import fit_approach2, fit_power_law

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


def plot_fit_of(fit, path: Path, **labels) -> bool:
    """Plot a fit to `path` unless it could not be fitted; whether it did."""
    if fit is None or getattr(fit, "kind", "unfitted") == "unfitted":
        return False
    plot_fit(fit, path, **labels)
    return True


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
        plot_fit_of(fit, out / "plots" / "data_scaling.png", xlabel="unique train tokens",
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
    labels = [f"{r.id} ({names[str(r.config.data)]}, {r.tags.get('stage') or 'no stage'})" for r in ranked]
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
    runs = [r for r in rows if isinstance(r.config.tags.get("budget"), (int, float))]
    budgets = {}
    for r in runs:
        budgets.setdefault(float(r.config.tags["budget"]), []).append(r)
    runs = [r for group in budgets.values() if len({x.config.model.depth for x in group}) >= 3 for r in group]
    if len({float(r.config.tags["budget"]) for r in runs}) < 2:
        return
    doc.h2("IsoFLOP")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_approach2([r.params for r in runs], [float(r.config.tags["budget"]) for r in runs],
                                [r.val_loss for r in runs])
    except UserError as e:
        doc.p(f"The IsoFLOP runs could not be fitted: {e}.")
        return
    plot_fit_of(fit, out / "plots" / "isoflop.png")
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
        if r.config.tags.get("group") and (folder / "ensemble.json").is_file():
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
        for name, value in flat_config(r.config.to_dict()).items():
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
    flats = [flat_config(r.config.to_dict()) for r in rows]
    names = sorted({n for f in flats for n in f if len({g.get(n) for g in flats}) > 1} - NOT_SWEPT)
    doc.table(["id", *names, "select_loss", "val_loss", "val_bpb"],
              [[r.id, *[f.get(n) for n in names], r.select_loss, r.val_loss, r.val_bpb]
               for r, f in zip(rows, flats)])
    if not names:
        doc.p("The compared runs have the same settings (other seeds or data aside).")
    plot_curves([(r.id, read_metrics(r.run_dir)) for r in rows], out / "plots" / "compare.png",
                title="compared runs")
    doc.img("plots/compare.png", "Train loss (lines) and val loss (markers) of the compared runs.")
