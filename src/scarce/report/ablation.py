"""The report of `scarce ablate`: its table (markdown and CSV, written by the recipe) and one plot of every
comparison's data multiple with its interval, beside its paired val difference."""

from __future__ import annotations

import math
from pathlib import Path

from scarce import atomic
from scarce.recipes.ablate import markdown
from scarce.report.plots import _figure, _save


def write_report(result: dict, out: str | Path) -> Path:
    """OUT/report.md (the table and warnings) and OUT/plots/ablation.png; returns the report's path."""
    out = Path(out)
    plot = out / "plots" / "ablation.png"
    plot_ablation(result, plot)
    o = result["options"]
    text = (f"# Ablation: {len(result['comparisons'])} comparison(s), {o['seeds']} seed(s), mode {o['mode']}\n\n"
            f"Val loss in nats per token of the checkpoint chosen on select, on {result['val_windows']} val windows "
            f"of {result['window_tokens']} tokens. Δ is the mean over seeds of variant minus base at the same seed "
            "(negative: the change helps); the data multiple is D_ref(L_variant) / D_ref(L_base) on the reference "
            "law (above 1: the change is worth that many times the data). Intervals: 95%, over resampled val "
            "windows, the seeds' spread of each comparison's paired differences (Student-t) and the reference law's "
            "refits; not over samples of the data. Cost: training FLOPs and wall time, variant over base.\n\n"
            + markdown(result) + "\n![data multiples](plots/ablation.png)\n")
    path = out / "report.md"
    atomic.write_text(path, text)
    return path


def plot_ablation(result: dict, path) -> None:
    """Two panels, one row per comparison: the data multiple (log axis, interval as a bar) and the paired
    val difference (interval as a bar, 0 marked)."""
    rows = result["comparisons"]
    fig, (ax_m, ax_d) = _figure(2, height=1.2 + 0.45 * max(1, len(rows)))
    labels = [f"{c['name']} ({c['kind']})" for c in rows]
    for i, c in enumerate(rows):
        m, d = c["multiple"], c["delta"]
        if m["value"] is not None:
            lo = m["low"] if m["low"] is not None else m["value"]
            hi = m["high"] if m["high"] is not None else max(m["value"], lo) * 10
            ax_m.plot([max(lo, 1e-3), hi], [i, i], color="tab:blue", lw=2)
            ax_m.plot([m["value"]], [i], "o", color="tab:blue")
            if m["high"] is None:
                ax_m.annotate("→ inf", (hi, i), fontsize=7, va="center")
        if d["value"] is not None:
            lo = d["low"] if d["low"] is not None else d["value"]
            hi = d["high"] if d["high"] is not None else d["value"]
            ax_d.plot([lo, hi], [i, i], color="tab:orange", lw=2)
            ax_d.plot([d["value"]], [i], "o", color="tab:orange")
    ax_m.set_xscale("log")
    ax_m.axvline(1.0, color="gray", lw=1, ls="--")
    ax_d.axvline(0.0, color="gray", lw=1, ls="--")
    for ax in (ax_m, ax_d):
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.grid(alpha=0.3)
    ax_m.set_xlabel("data multiple over the base (reference law), 95% interval")
    ax_d.set_xlabel("Δ val loss, variant − base (nats/token), 95% interval")
    seeds = result["options"]["seeds"]
    ax_m.set_title(f"what each change is worth in data ({seeds} seed{'s' if seeds != 1 else ''})", fontsize=10)
    ax_d.set_title("paired val difference", fontsize=10)
    if not any(math.isfinite(c["multiple"]["value"] or math.nan) for c in rows):
        ax_m.text(0.5, 0.5, "no finite multiple", transform=ax_m.transAxes, ha="center")
    _save(fig, path)
