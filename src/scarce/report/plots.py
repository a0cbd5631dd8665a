"""PNG renderings of scaling-law fits: the points, the fitted curve with its bootstrap band, and the
asymptote with its interval, on log axes.

Figures are built on matplotlib's object API with the Agg canvas created inside each function, so
importing this module touches no global matplotlib state (no pyplot, no backend switch) and
rendering works on headless machines. Files are written atomically.
"""

from __future__ import annotations

import os

import numpy as np

from scarce.atomic import atomic_write
from scarce.scaling.chinchilla import compute_optimal, optimal_loss
from scarce.scaling.laws import effective_data

BAND_ALPHA = 0.25
LEVEL_PCT = (2.5, 97.5)


def _figure(ncols: int = 1, height: float = 4.8):
    """A figure on an Agg canvas and its axes (one per column)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4 * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _save(fig, path: str | os.PathLike) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def _finish(fig, ax, path, xlabel: str, ylabel: str, title: str, legend: int = 8) -> None:
    """Labels, a light grid, the legend and the title of a one-panel plot of runs, then the PNG."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=legend)
    ax.set_title(title)
    _save(fig, path)


def _log_axes(ax, xlabel: str, ylabel: str, ydata=None) -> None:
    """Log-log axes, labelled; call after plotting (the y ticks depend on the data range).

    ydata: the values that must stay visible (points, fitted curve, a positive asymptote); the y range is
    set from them, so a bootstrap band or an asymptote at E = 0 cannot stretch a log axis over decades.
    """
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    if ydata is not None:
        y = np.asarray([v for v in np.ravel(ydata) if np.isfinite(v) and v > 0])
        if y.size:
            lo, hi = y.min(), y.max()
            pad = (hi / lo) ** 0.06 if hi > lo else 1.02
            ax.set_ylim(lo / pad, hi * pad)
    _loss_ticks(ax)
    _x_ticks(ax)


def _x_ticks(ax) -> None:
    """Counts on a log x axis labelled for people (20k, 50k, 100k, 1M): decades always, and the 2s and 5s
    between them while x spans at most three decades (matplotlib's 3x10^4 4x10^4 labels collide)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = ax.get_xlim()
    if lo <= 0:
        return
    if hi / lo <= 1e3:
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: si(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def si(v: float) -> str:
    """3 significant digits with a k/M/G/T/P suffix: 40000 -> 40k, 1.2e12 -> 1.2T."""
    for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def _integer_x_ticks(ax, stop: float) -> None:
    """Counts (ensemble members) on a log axis: 1, 2, 4, 8, ... labelled as plain integers."""
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ticks = [2**i for i in range(0, 12) if 2**i <= stop]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _loss_ticks(ax) -> None:
    """Plain, evenly spaced y tick labels when y spans less than a decade (losses), where log ticks
    would label only one or two values."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    lo, hi = ax.get_ylim()
    if lo <= 0 or hi / lo >= 10:
        return
    ticks = MaxNLocator(nbins=7).tick_values(lo, hi)
    ax.set_yticks(ticks[(ticks >= lo) & (ticks <= hi)])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(lo, hi)


def _band(ax, x, curves: np.ndarray, color, label: str | None = None) -> None:
    """Shade the pointwise 95% band of curves (draws, len(x)), ignoring non-finite draws."""
    if curves.size == 0:
        return
    lo, hi = np.nanpercentile(np.where(np.isfinite(curves), curves, np.nan), LEVEL_PCT, axis=0)
    ax.fill_between(x, lo, hi, color=color, alpha=BAND_ALPHA, lw=0, label=label)


def _asymptote(ax, est, color="tab:red", name: str = "E") -> None:
    """The asymptote as a dashed line with its interval as a shaded strip (on log axes only what is > 0)."""
    if not est.value > 0:
        ax.plot([], [], color=color, ls="--", lw=1, label=f"{name} = {est.value:.3g} (at the bound, not drawn)")
        return
    ax.axhline(est.value, color=color, ls="--", lw=1, label=f"{name} = {est.value:.3g}")
    if np.isfinite(est.low) and np.isfinite(est.high) and est.high > 0:
        ax.axhspan(max(est.low, est.value * 1e-3), est.high, color=color, alpha=0.12, lw=0,
                   label=f"{name} 95% CI [{est.low:.3g}, {est.high:.3g}]")


def _near(v: float, y) -> list[float]:
    """[v] when it is positive and within a factor 3 of the data's smallest y (worth widening the axis for)."""
    return [v] if np.isfinite(v) and v > 0 and v >= np.min(y) / 3 else []


def _caveat(fit) -> str:
    """A short title suffix for fits whose interval or curve needs care."""
    if fit.flags.get("underdetermined"):
        return "\n(under-determined: 3 parameters from 3 points; the band says little)"
    if fit.flags.get("at_bound"):
        return "\n(a parameter hit its bound)"
    return ""


def _span(x: np.ndarray, left: float = 0.5, right: float = 10.0, n: int = 200) -> np.ndarray:
    """Log-spaced x from a bit left of the data to `right` times its maximum (the extrapolation shown)."""
    return np.geomspace(x.min() * left, x.max() * right, n)


def _ci_text(fit, names) -> str:
    e = fit.estimates
    part = lambda k: f"{k} = {e[k].value:.3g}" + (f" [{e[k].low:.3g}, {e[k].high:.3g}]" if np.isfinite(e[k].low) else "")
    return ",  ".join(part(k) for k in names)


def _multiple_text(est) -> str:
    """'2.31x (95% CI 1.9-3.0x)'; an infinite end (the reference never reaches the loss) reads inf."""
    if not np.isfinite(est.value):
        return "inf (the reference never reaches this loss)"
    text = f"{est.value:.3g}x"
    if np.isnan(est.low) or np.isnan(est.high):
        return text
    return text + f" (95% CI {est.low:.3g}-{est.high:.3g}x)"


def _power_curves(fit, x: np.ndarray, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The fitted E + A·x^-alpha at x, and the same for each bootstrap draw (draws, len(x))."""
    E, A, al = (fit.value(prefix + k) for k in ("E", "A", "alpha"))
    d = fit.draws
    if d.get("E") is None:
        return E + A * x**-al, np.empty((0, x.size))
    return E + A * x**-al, d["E"][:, None] + d["A"][:, None] * x[None, :] ** -d["alpha"][:, None]


# ----------------------------------------------------------------------------- one renderer per fit


def plot_power_law(fit, path, *, xlabel: str = "x", ylabel: str = "loss", title: str | None = None,
                   left: float = 0.5, counts: bool = False) -> None:
    """Points, the fitted power law from `left` times the smallest x to 10x past the data (shaded:
    extrapolation), its band, and the asymptote E. counts: x is a count (ensemble members), ticked 1, 2, 4..."""
    fig, (ax,) = _figure()
    x, y = fit.data["x"], fit.data["y"]
    xs = _span(x, left)
    curve, curves = _power_curves(fit, xs)
    _band(ax, xs, curves, "tab:blue", "fit 95% band")
    ax.plot(xs, curve, color="tab:blue", label="fit E + A·x^(-alpha)")
    ax.scatter(x, y, color="black", s=18, zorder=3, label=f"data ({x.size} points)")
    _asymptote(ax, fit["E"])
    _extrapolation(ax, x.max(), xs.max())
    ax.set_xlim(xs.min(), xs.max())
    _log_axes(ax, xlabel, ylabel, np.concatenate([y, curve, _near(fit.value("E"), y)]))
    if counts:
        _integer_x_ticks(ax, xs.max())
    ax.set_title((title or f"{ylabel} vs {xlabel}: power law with asymptote") + _caveat(fit), fontsize=10)
    ax.legend(fontsize=8, title=_ci_text(fit, ["alpha"]), title_fontsize=8)
    _save(fig, path)


def _extrapolation(ax, start: float, stop: float) -> None:
    """Shade x beyond the data: what is drawn there is the fitted law, not a measurement."""
    if stop > start:
        ax.axvspan(start, stop, color="0.5", alpha=0.08, lw=0, label="beyond the data (extrapolated)")


def plot_joint(fit, path, *, title: str | None = None, **_) -> None:
    """Left: loss against members per size with the stage-1 fits; right: E_N against size with stage 2."""
    fig, (ax1, ax2) = _figure(2)
    d = fit.data
    colors = _colors(d["sizes"].size)
    ks = _span(d["members"], 0.8, 4)
    for i, n in enumerate(d["sizes"]):
        m = d["params"] == n
        e_n = fit.value(f"E_N={n:.4g}")
        ax1.scatter(d["members"][m], d["loss"][m], color=colors[i], s=16, zorder=3, label=f"N = {n:.3g}")
        ax1.plot(ks, e_n + d["A_N"][i] * ks ** -d["alpha_N"][i], color=colors[i], lw=1)
        ax1.axhline(e_n, color=colors[i], ls=":", lw=1)
    _log_axes(ax1, "ensemble members K", "loss")
    ax1.set_title("stage 1: L(K) = E_N + A_N·K^(-alpha_N) per size (dotted: E_N)")
    ax1.legend(fontsize=8)
    _joint_stage2(ax2, fit, colors)
    fig.suptitle(title or "joint limit over model size and ensemble members")
    _save(fig, path)


def _joint_stage2(ax, fit, colors) -> None:
    sizes = fit.data["sizes"]
    ests = [fit[f"E_N={n:.4g}"] for n in sizes]
    ns = _span(sizes, 0.5, 30)
    curve, curves = _power_curves(fit, ns)
    _band(ax, ns, curves, "tab:blue", "fit 95% band")
    ax.plot(ns, curve, color="tab:blue", label="E_N = E + A·N^(-alpha)")
    val = np.array([e.value for e in ests])
    err = np.array([[e.value - e.low, e.high - e.value] for e in ests]).T
    ax.errorbar(sizes, val, yerr=np.nan_to_num(err), fmt="o", color="black", ms=4, capsize=3, zorder=3,
                label="E_N with 95% CI")
    _asymptote(ax, fit["E"])
    _log_axes(ax, "parameters N", "asymptotic loss E_N")
    ax.set_title("stage 2: " + _ci_text(fit, ["alpha"]))
    ax.legend(fontsize=8)


def plot_efficiency(fit, path, *, xlabel: str = "tokens D", ylabel: str = "loss", title: str | None = None) -> None:
    """The reference curve (fit or empirical frontier), the new point, and the horizontal gap D -> D_ref.

    The title always carries the efficiency with its 95% interval, and "(extrapolated)" when D_ref lies
    outside the reference data; x beyond the largest reference run is shaded.
    """
    fig, (ax,) = _figure()
    d = fit.data
    D, L = d["ref_tokens"], d["ref_loss"]
    loss, tokens = float(d["loss"][0]), float(d["tokens"][0])
    d_ref = fit.value("D_ref")
    xs = np.geomspace(min(D.min(), tokens) * 0.5, max(D.max(), min(d_ref, D.max() * 1e3)) * 2, 200)
    if fit.kind == "efficiency":
        curve, curves = _power_curves(fit, xs)
        _band(ax, xs, curves, "tab:blue", "reference fit 95% band")
        ax.plot(xs, curve, color="tab:blue", label="reference fit E + A·D^(-alpha)")
        _asymptote(ax, fit["E"])
    else:
        ax.plot(d["front_tokens"], d["front_loss"], color="tab:blue", marker="o", ms=3,
                label="reference best-loss frontier")
    ax.scatter(D, L, color="black", s=14, zorder=3, label="reference runs")
    ax.scatter([tokens], [loss], marker="*", s=140, color="tab:orange", zorder=4,
               label=f"new recipe ({si(tokens)} tokens)")
    if np.isfinite(d_ref):
        ax.annotate("", xy=(d_ref, loss), xytext=(tokens, loss),
                    arrowprops={"arrowstyle": "->", "color": "tab:orange"})
        ax.scatter([d_ref], [loss], marker="|", s=200, color="tab:orange", zorder=4,
                   label=f"D_ref = {si(d_ref)} tokens")
    _extrapolation(ax, D.max(), xs.max())
    shown = np.concatenate([L, [loss]])
    if fit.kind == "efficiency":
        shown = np.concatenate([shown, curve, _near(fit.value("E"), shown)])
    ax.set_xlim(xs.min(), xs.max())
    _log_axes(ax, xlabel, ylabel, shown)
    flag = "  (extrapolated)" if fit.flags.get("extrapolated") else ""
    head = f"{title}: " if title else "data efficiency: "
    ax.set_title(f"{head}{_multiple_text(fit['efficiency'])}{flag}", fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_data_constrained(fit, path, *, title: str | None = None, **_) -> None:
    """Loss against tokens for each unique-data budget, with the fitted curves and the fresh-data law."""
    fig, (ax,) = _figure()
    d = fit.data
    E, B, beta, r_star = (fit.value(k) for k in ("E", "B", "beta", "R_star"))
    xs = _span(d["tokens"], 0.5, 3)
    uniques = np.unique(d["unique_tokens"])
    colors = _colors(uniques.size)
    for i, u in enumerate(uniques):
        m = d["unique_tokens"] == u
        ax.scatter(d["tokens"][m], d["loss"][m], color=colors[i], s=16, zorder=3, label=f"U = {u:.3g}")
        ax.plot(xs, E + B * effective_data(u, xs, r_star) ** -beta, color=colors[i], lw=1)
    ax.plot(xs, E + B * xs**-beta, color="gray", ls="-.", lw=1, label="all-fresh data (D' = D)")
    _asymptote(ax, fit["E"])
    _log_axes(ax, "tokens seen D", "loss")
    ax.set_title(title or "data-constrained scaling: " + _ci_text(fit, ["R_star", "beta"]), fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_chinchilla3(fit, path, *, title: str | None = None, **_) -> None:
    """Left: loss against compute with the compute-optimal frontier L*(C) and E; right: N_opt, D_opt."""
    fig, (ax1, ax2) = _figure(2)
    d, dr = fit.data, fit.draws
    C = 6 * d["params"] * d["tokens"]
    cs = _span(C, 0.5, 100)
    names = ("E", "A", "B", "alpha", "beta")
    p = [fit.value(k) for k in names]
    sc = ax1.scatter(C, d["loss"], c=np.log10(d["params"]), cmap="viridis", s=12, zorder=3)
    fig.colorbar(sc, ax=ax1, label="log10 parameters")
    col = lambda k: dr[k][:, None] if dr.get(k) is not None and dr[k].size else None
    if col("E") is not None:
        _band(ax1, cs, optimal_loss(cs[None, :], *(col(k) for k in names)), "tab:blue", "frontier 95% band")
    ax1.plot(cs, optimal_loss(cs, *p), color="tab:blue", label="compute-optimal loss L*(C)")
    _asymptote(ax1, fit["E"])
    _log_axes(ax1, "training FLOPs C = 6ND", "loss")
    ax1.set_title(_ci_text(fit, ["alpha", "beta"]), fontsize=9)
    ax1.legend(fontsize=8)
    n, dd = compute_optimal(cs, *p[1:])
    for values, name, color in ((n, "N_opt (params)", "tab:green"), (dd, "D_opt (tokens)", "tab:purple")):
        ax2.plot(cs, values, color=color, label=name)
    if col("E") is not None:
        nd, ddd = compute_optimal(cs[None, :], *(col(k) for k in names[1:]))
        _band(ax2, cs, nd, "tab:green")
        _band(ax2, cs, ddd, "tab:purple")
    _log_axes(ax2, "training FLOPs C", "compute-optimal size")
    ax2.set_title("allocation: " + _ci_text(fit, ["a", "b"]), fontsize=9)
    ax2.legend(fontsize=8)
    fig.suptitle(title or "Chinchilla approach 3: L = E + A/N^alpha + B/D^beta")
    _save(fig, path)


def plot_chinchilla2(fit, path, *, title: str | None = None, **_) -> None:
    """Left: the IsoFLOP parabolas and their minima; right: N_opt against C with the fitted power law."""
    fig, (ax1, ax2) = _figure(2)
    d = fit.data
    groups = np.unique(d["group"])
    colors = _colors(groups.size)
    for g in groups:
        m = d["group"] == g
        ln = np.log(d["params"][m])
        u = np.linspace(ln.min(), ln.max(), 100) - d["center"][g]
        c0, c1, c2 = d["coef"][g]
        ax1.scatter(d["params"][m], d["loss"][m], color=colors[g], s=14, zorder=3,
                    label=f"C = {np.exp(d['log_flops'][g]):.2g}")
        ax1.plot(np.exp(u + d["center"][g]), c0 + c1 * u + c2 * u * u, color=colors[g], lw=1)
        ax1.axvline(np.exp(d["log_n_opt"][g]), color=colors[g], ls=":", lw=1)
    _log_axes(ax1, "parameters N", "loss")
    ax1.set_title("IsoFLOP parabolas in log N (dotted: minima)", fontsize=9)
    ax1.legend(fontsize=8)
    _optimum_panel(ax2, fit, np.exp(d["log_flops"]), np.exp(d["log_n_opt"]), "IsoFLOP minima")
    fig.suptitle(title or "Chinchilla approach 2 (IsoFLOP)")
    _save(fig, path)


def plot_chinchilla1(fit, path, *, title: str | None = None, **_) -> None:
    """Left: training curves against compute and their lower envelope; right: N_opt along the envelope."""
    fig, (ax1, ax2) = _figure(2)
    d = fit.data
    sizes = np.unique(d["params"])
    colors = _colors(sizes.size)
    for i, n in enumerate(sizes):
        m = d["params"] == n
        order = np.argsort(d["tokens"][m])
        ax1.plot((6 * n * d["tokens"][m])[order], d["loss"][m][order], color=colors[i], lw=1, label=f"N = {n:.3g}")
    ax1.plot(np.exp(d["env_log_flops"]), d["env_loss"], color="black", lw=2, ls="--", label="envelope")
    _log_axes(ax1, "training FLOPs C = 6ND", "loss")
    ax1.set_title("training curves and their lowest-loss envelope", fontsize=9)
    ax1.legend(fontsize=7, ncol=2)
    _optimum_panel(ax2, fit, np.exp(d["env_log_flops"]), np.exp(d["env_log_n"]), "envelope N_opt")
    fig.suptitle(title or "Chinchilla approach 1 (training-curve envelope)")
    _save(fig, path)


def _optimum_panel(ax, fit, C: np.ndarray, n_opt: np.ndarray, label: str) -> None:
    """N_opt points against C with the least-squares power law N_opt ∝ C^a through them (slope = a)."""
    a = fit.value("a")
    k = np.exp(np.mean(np.log(n_opt) - a * np.log(C)))
    cs = _span(C, 0.5, 10)
    ax.scatter(C, n_opt, color="black", s=16, zorder=3, label=label)
    ax.plot(cs, k * cs**a, color="tab:green", label="N_opt ∝ C^a")
    draws = fit.draws.get("a")
    if draws is not None and draws.size:
        lc0 = np.mean(np.log(C))  # pivot the slope draws at the centre of the data
        _band(ax, cs, k * np.exp(a * lc0) * np.exp(draws[:, None] * (np.log(cs)[None, :] - lc0)), "tab:green",
              "95% band of the slope")
    _log_axes(ax, "training FLOPs C", "parameters N_opt")
    ax.set_title(_ci_text(fit, ["a", "b"]), fontsize=9)
    ax.legend(fontsize=8)


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1) * 0.9) for i in range(n)]


RENDERERS = {
    "power_law": plot_power_law,
    "joint": plot_joint,
    "efficiency": plot_efficiency,
    "efficiency_empirical": plot_efficiency,
    "data_constrained": plot_data_constrained,
    "chinchilla1": plot_chinchilla1,
    "chinchilla2": plot_chinchilla2,
    "chinchilla3": plot_chinchilla3,
}


def plot_fit(fit, path, **labels) -> None:
    """Render any scarce.scaling Fit to a PNG at path (labels such as xlabel/ylabel go to the renderer)."""
    RENDERERS[fit.kind](fit, path, **labels)


# -- plots of runs (the bench report and `scarce report`) -------------------------------------------

STAGE_STYLE = {"reference": ("tab:blue", "o"), "recipe": ("tab:orange", "s"), "ensemble": ("tab:green", "^")}


def plot_loss_vs_compute(records: list[dict], path, ensemble: dict | None = None) -> None:
    """Val loss against training FLOPs of every run; the ensemble prefixes at their summed compute."""
    fig, (ax,) = _figure(height=4.4)
    stages = dict.fromkeys(r["stage"] or "run" for r in records)
    for stage in stages:
        mine = [r for r in records if (r["stage"] or "run") == stage]
        color, marker = STAGE_STYLE.get(stage, ("tab:gray", "o"))
        ax.scatter([r["flops"] for r in mine], [r["val_loss"] for r in mine], color=color, marker=marker, s=24,
                   label=f"{stage} runs", zorder=3)
    if ensemble:
        flops = [sum(ensemble["member_flops"][:k]) for k in range(1, len(ensemble["member_flops"]) + 1)]
        ax.plot(flops, ensemble["prefix_val_loss"], color="tab:red", marker="D", label="ensemble, k = 1..K")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs (log scale)")
    ax.set_ylabel("val loss (nats/token)")
    _x_ticks(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("loss vs compute")
    _save(fig, path)


def plot_members(ensemble: dict, path) -> None:
    """Each member's val loss (points) and the ensemble of the first k members (line); points, not bars,
    because the y axis is zoomed to the losses and bars from a cut-off baseline would mislead."""
    fig, (ax,) = _figure(height=4.4)
    k = list(range(1, len(ensemble["member_val_loss"]) + 1))
    ax.scatter(k, ensemble["member_val_loss"], color="tab:gray", s=40, zorder=3, label="member k alone")
    mean = sum(ensemble["member_val_loss"]) / len(k)
    ax.axhline(mean, color="tab:gray", ls=":", lw=1, label=f"mean single member = {mean:.4f}")
    ax.plot(k, ensemble["prefix_val_loss"], color="tab:red", marker="D", label="ensemble of members 1..k")
    lo = min(ensemble["prefix_val_loss"] + ensemble["member_val_loss"])
    hi = max(ensemble["prefix_val_loss"] + ensemble["member_val_loss"])
    pad = max(hi - lo, 1e-3) * 0.25
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(k)
    ax.set_xlabel("member k (ensemble: first k members, logits averaged)")
    ax.set_ylabel("val loss (nats/token)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("per-member val losses and the ensemble of the first k")
    _save(fig, path)


def plot_reference_points(xs: list, ys: list, path, title: str) -> None:
    """The reference points alone, when no law could be fitted to them."""
    fig, (ax,) = _figure(height=4.4)
    ax.plot(xs, ys, marker="o")
    ax.set_xscale("log")
    ax.set_xlabel("unique train tokens (log scale)")
    _x_ticks(ax)
    ax.set_ylabel("val loss (nats/token)")
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    _save(fig, path)


def plot_epochs(rows: list[dict], path) -> None:
    """Val loss against epochs (log scale), one line per model size: the standard recipe's overfitting."""
    fig, (ax,) = _figure(height=4.4)
    depths = sorted({r["depth"] for r in rows})
    for color, depth in zip(_colors(len(depths)), depths):
        mine = sorted((r for r in rows if r["depth"] == depth), key=lambda r: r["epochs"])
        ax.plot([r["epochs"] for r in mine], [r["val_loss"] for r in mine], color=color, marker="o",
                label=f"depth {depth} ({mine[0]['params']:,} params)")
    ax.set_xscale("log", base=2)
    _finish(fig, ax, path, "epochs over the fixed budget (log scale)", "val loss (nats/token)",
            "standard recipe: val loss against epochs")


def plot_curves(curves: list[tuple[str, list[dict]]], path, title: str = "training curves",
                min_points: int = 0) -> list[str]:
    """Train loss (thin) and val loss (markers) against tokens seen, one colour per run: `curves` holds
    (label, metrics.jsonl records) pairs. Every run has its legend entry (noting a run that logged no evaluation,
    whose steps cannot be put in tokens); a run with fewer than `min_points` train losses has them drawn as points.
    Returns the labels of those runs."""
    fig, (ax,) = _figure(height=4.6)
    few = []
    for color, (label, records) in zip(_colors(len(curves)), curves):
        train = [(r["step"], r["loss"]) for r in records if r.get("type") == "train" and _finite(r, "step", "loss")]
        evals = [(r["tokens_seen"], r["val_loss"], r["step"]) for r in records
                 if r.get("type") == "eval" and _finite(r, "tokens_seen", "val_loss", "step")]
        per_step = evals[0][0] / max(1, evals[0][2]) if evals else 0
        if len(train) < min_points:
            few.append(label)
        if train and per_step:
            ax.plot([s * per_step for s, _ in train], [v for _, v in train], color=color, lw=0.9, alpha=0.6,
                    marker="." if len(train) < min_points else None)
        ax.plot([t for t, *_ in evals], [v for _, v, _ in evals], color=color, marker="o", ms=3,
                label=label if evals else f"{label} (no evaluation logged)")
    _finish(fig, ax, path, "tokens seen", "loss (nats/token): train (line), val (markers)", title, legend=7)
    return few


LEGEND_LINES = 24
"""Lines named in the legend of a swept-setting plot; more are drawn, and the legend says how many."""


def plot_against_field(lines: list[tuple[str, list[tuple[float, float]]]], field: str, path) -> None:
    """Val loss against one swept config field: `lines` holds (label, [(value, val loss), ...]), each the runs
    that differ in `field` alone (`scarce.report.groups.swept_lines`). A line of one run is a grey point. Log x
    when the values are positive and span 10x or more."""
    fig, (ax,) = _figure(height=4.8)
    fig.set_figwidth(11.0)  # the legend, beside the axes, names what each line holds fixed
    joined = [(label, pts) for label, pts in lines if len(pts) >= 2]
    for i, (color, (label, pts)) in enumerate(zip(_colors(len(joined)), joined)):
        ax.plot([x for x, _ in pts], [y for _, y in pts], color=color, marker="o",
                label=label if i < LEGEND_LINES else None)
    if len(joined) > LEGEND_LINES:
        ax.plot([], [], color="none", label=f"... and {len(joined) - LEGEND_LINES} more lines")
    alone = [pt for _, pts in lines if len(pts) == 1 for pt in pts]
    if alone:
        ax.scatter([x for x, _ in alone], [y for _, y in alone], color="grey", s=12, alpha=0.6,
                   label=f"{len(alone)} runs with no other differing in {field} alone")
    xs = [x for _, pts in lines for x, _ in pts]
    if min(xs) > 0 and max(xs) >= 10 * min(xs):
        ax.set_xscale("log")
    ax.set_xlabel(field)
    ax.set_ylabel("val loss (nats/token)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(f"val loss against {field}, other settings fixed along each line")
    _save(fig, path)


def _finite(record: dict, *keys: str) -> bool:
    return all(isinstance(record.get(k), (int, float)) and np.isfinite(record[k]) for k in keys)


def plot_k_curves(curves: list[tuple[str, list[float], list[float]]], path) -> None:
    """Val loss of the ensemble of the first k members against k, one line per ensemble, and each member's own
    loss as faint points: `curves` holds (label, prefix losses, member losses)."""
    fig, (ax,) = _figure(height=4.4)
    for color, (label, prefix, members) in zip(_colors(len(curves)), curves):
        ks = range(1, len(prefix) + 1)
        ax.plot(list(ks), prefix, color=color, marker="o", label=label)
        ax.scatter(list(range(1, len(members) + 1)), members, color=color, s=10, alpha=0.35)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(fig, ax, path, "members k (the ensemble of the first k)", "val loss (nats/token)",
            "ensembles: val loss against members (faint: each member alone)", legend=7)
