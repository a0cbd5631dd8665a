"""Data efficiency: how many reference-recipe tokens it would take to reach the loss a new recipe reached.

efficiency = D_ref(L) / D: a recipe that reaches loss L with D tokens, where the baseline needs
D_ref(L), is D_ref/D times as data-efficient. Two ways to get D_ref(L):

- parametric: fit the reference L(D) = E + A·D^(-alpha) and invert it. It extrapolates smoothly,
  which is exactly the danger -- near the asymptote D_ref explodes, and for L <= E it is infinite
  (the baseline never gets there at any data size). The bootstrap interval shows how much.
- empirical: interpolate log tokens against log loss along the reference's best-loss curve; no
  model, but only meaningful inside the curve, and flagged when L lies outside it.
"""

from __future__ import annotations

import numpy as np

from scarce.errors import UserError
from scarce.scaling.laws import (
    LEVEL,
    Fit,
    aligned,
    bootstrap_weights,
    positive_array,
    require_distinct,
    solve_power_law,
    split_rows,
    summarise,
    with_data_row,
)


def tokens_for_loss(loss, E, A, alpha):
    """Invert L(D) = E + A·D^(-alpha): D(L) = (A / (L - E))^(1/alpha); inf where L <= E."""
    loss, E, A, alpha = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (loss, E, A, alpha)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = (A / (loss - E)) ** (1.0 / alpha)
    return np.where(loss > E, d, np.inf)


def fit_efficiency(ref_tokens, ref_loss, loss: float, tokens: float, *, n_boot: int = 1000, seed: int = 0,
                   level: float = LEVEL, loss_draws=None) -> Fit:
    """Parametric data efficiency D_ref(L)/D from an inverted power-law fit of the reference curve.

    Estimates: efficiency, D_ref, and the reference fit's E, A, alpha. Resamples where the fitted
    asymptote lies at or above L give D_ref = inf; they are kept (they are what the data say), so
    the upper end of the interval can be infinite. The interval comes from refits to resampled reference
    points, or with `loss_draws` (n_draws, n_ref + 1: the reference losses and then L, measured again on
    resampled val windows, paired) from those measurements.
    """
    D, L = _reference(ref_tokens, ref_loss)
    require_distinct(D, 3, "the reference fit (3 parameters)")
    loss, tokens = _target(loss, tokens)
    if loss_draws is not None:
        draws = np.asarray(loss_draws, dtype=float).reshape(-1, D.size + 1)
        y, targets = np.vstack([L, draws[:, :-1]]), np.concatenate([[loss], draws[:, -1]])
        n_boot, w = draws.shape[0], np.ones((draws.shape[0] + 1, D.size))
    else:
        w = with_data_row(bootstrap_weights(np.random.default_rng(seed), D.size, n_boot), D.size)
        y, targets = L, loss
    b = solve_power_law(D, y, w)
    d_ref = tokens_for_loss(targets, b.E, b.A, b.alpha)
    values = {"efficiency": d_ref / tokens, "D_ref": d_ref, "E": b.E, "A": b.A, "alpha": b.alpha}
    ok = b.ok & ~np.isnan(targets * np.ones_like(b.ok, dtype=float))  # a target draw may be missing (nan)
    point, draws = split_rows(values, ok)
    fit = Fit("efficiency", summarise(point, draws, level), D.size, n_boot, int((~ok[1:]).sum()), level,
              draws=draws, data={"ref_tokens": D, "ref_loss": L, "loss": np.array([loss]),
                                 "tokens": np.array([tokens]), "aligned": aligned(values, ok)})
    _flag_parametric(fit, D, L, loss, b, draws, loss_draws is not None)
    return fit


def _flag_parametric(fit: Fit, D, L, loss: float, b, draws, measured: bool = False) -> None:
    if np.unique(D).size <= 3:
        fit.warn("the reference fit is under-determined (3 parameters, 3 points)"
                 + ("; its interval carries measurement noise only" if measured else ""), "underdetermined")
    if b.at_bound[0]:
        fit.warn("the reference fit hit a bound (its asymptote at 0 or its exponent at a limit): the parametric "
                 "multiple rests on a law whose asymptote the reference does not identify; inside the reference's "
                 "losses the empirical multiple needs no law", "at_bound")
    if not L.min() <= loss <= L.max():
        fit.warn(f"loss {loss:g} lies outside the reference losses [{L.min():g}, {L.max():g}]: "
                 "D_ref extrapolates the fitted law", "extrapolated")
    if loss <= b.E[0]:
        fit.warn(f"loss {loss:g} is at or below the reference asymptote E={b.E[0]:.4g}: "
                 "the reference recipe never reaches it (efficiency infinite)", "unreachable")
    n_inf = int(np.isinf(draws["D_ref"]).sum())
    if n_inf:
        fit.warn(f"{n_inf} of {draws['D_ref'].size} refits put the asymptote at or above the loss "
                 "(D_ref infinite there)", "unbounded")


def empirical_frontier(tokens: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best loss reached with at most D tokens: points that improve on every smaller token count."""
    order = np.lexsort((loss, tokens))
    t, ls = tokens[order], loss[order]
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(ls)[:-1]])
    keep = ls < best_before
    return t[keep], ls[keep]


def interpolate_tokens(front_tokens, front_loss, loss: float) -> tuple[float, bool]:
    """log D interpolated linearly in log L along the frontier; outside it the end segment is extended.

    Returns (D_ref, extrapolated). The frontier's loss falls as tokens grow, so it is sorted by loss.
    """
    if front_tokens.size < 2:
        return float("nan"), True
    x, y = np.log(front_loss[::-1]), np.log(front_tokens[::-1])  # ascending loss
    t = np.log(loss)
    outside = not x[0] <= t <= x[-1]
    if not outside:
        return float(np.exp(np.interp(t, x, y))), False
    i = 0 if t < x[0] else x.size - 2
    slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
    return float(np.exp(y[i] + slope * (t - x[i]))), True


def empirical_efficiency(ref_tokens, ref_loss, loss: float, tokens: float, *, n_boot: int = 1000,
                         seed: int = 0, level: float = LEVEL, loss_draws=None) -> Fit:
    """Non-parametric data efficiency from the reference's empirical (tokens, best loss) curve.

    The bootstrap resamples reference points and rebuilds the frontier each time; it shows how much
    the answer leans on individual runs, not a sampling model of the curve. With `loss_draws` (as for
    `fit_efficiency`) the frontier and L are rebuilt from each resampled measurement instead. Flagged
    (warning and flags["extrapolated"]) when L lies outside the frontier's losses.
    """
    D, L = _reference(ref_tokens, ref_loss)
    loss, tokens = _target(loss, tokens)
    ft, fl = empirical_frontier(D, L)
    if ft.size < 2:
        raise UserError("the reference curve needs at least 2 points that improve the loss as tokens grow")
    d_ref = [interpolate_tokens(ft, fl, loss)[0]]
    if loss_draws is not None:
        draws = np.asarray(loss_draws, dtype=float).reshape(-1, D.size + 1)
        n_boot = draws.shape[0]
        d_ref += [interpolate_tokens(*empirical_frontier(D, row[:-1]), row[-1])[0] for row in draws]
    else:
        w = bootstrap_weights(np.random.default_rng(seed), D.size, n_boot)
        d_ref += [interpolate_tokens(*empirical_frontier(D[row > 0], L[row > 0]), loss)[0] for row in w]
    d_ref = np.array(d_ref)
    ok = np.isfinite(d_ref)
    values = {"efficiency": d_ref / tokens, "D_ref": d_ref}
    point, draws = split_rows(values, ok)
    fit = Fit("efficiency_empirical", summarise(point, draws, level), D.size, n_boot, int((~ok[1:]).sum()),
              level, draws=draws, data={"ref_tokens": D, "ref_loss": L, "front_tokens": ft, "front_loss": fl,
                                        "loss": np.array([loss]), "tokens": np.array([tokens]),
                                        "aligned": aligned(values, ok)})
    if interpolate_tokens(ft, fl, loss)[1]:
        fit.warn(f"loss {loss:g} lies outside the reference curve's losses [{fl.min():g}, {fl.max():g}]: "
                 "D_ref is extrapolated from the end segment", "extrapolated")
    return fit


def _reference(tokens, loss) -> tuple[np.ndarray, np.ndarray]:
    D = positive_array("reference tokens", tokens)
    return D, positive_array("reference loss", loss, n=D.size)


def _target(loss, tokens) -> tuple[float, float]:
    return float(positive_array("loss", loss, n=1)[0]), float(positive_array("tokens", tokens, n=1)[0])
