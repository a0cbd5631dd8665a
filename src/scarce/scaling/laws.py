"""Power laws with an asymptote, the joint two-step limit and data-constrained scaling, with bootstrap CIs.

The headline numbers of scaling work (an asymptote, an exponent, a data-efficiency factor) are
extrapolations from a handful of points, so every fit here reports a percentile-bootstrap interval
(resampling points) next to its estimate, counts the refits that failed, and warns when the fit has
as many parameters as points.

Fits use *variable projection*: for L = E + A·z(θ) the loss is linear in (E, A) once the nonlinear
parameters θ are fixed, so (E, A) come from a bounded closed-form least-squares solve and only θ is
searched -- over a dense grid (the "many starts") and then refined. Every bootstrap resample is one
row of a batch, so a thousand refits cost about as much as a few matrix products.

Inputs are plain arrays, so callers can pass data from CSV files or from the run store alike.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from scarce.errors import UserError

LEVEL = 0.95
# Bounds on the exponent of x^(-alpha); a fit that lands on one is flagged, not trusted.
ALPHA_BOUNDS = (1e-3, 10.0)
_ALPHA_GRID = np.geomspace(*ALPHA_BOUNDS, 121)
# Bounds on R* (Muennighoff et al.'s repetition half-life, in epochs) and the data exponent.
R_STAR_BOUNDS = (0.1, 1000.0)
BETA_BOUNDS = (1e-2, 3.0)


class FitWarning(UserWarning):
    """A fit is under-determined, hit a bound, or extrapolates: its numbers need care."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its percentile-bootstrap interval (nan when there were no refits)."""

    value: float
    low: float
    high: float


@dataclass
class Fit:
    """The result of one fit: named estimates with intervals, plus what is needed to judge and plot it."""

    kind: str
    """Which fit: power_law, joint, data_constrained, efficiency, efficiency_empirical, chinchilla1/2/3."""
    estimates: dict[str, Estimate]
    n_points: int
    n_boot: int
    """Bootstrap refits requested."""
    n_failed: int
    """Refits that failed (degenerate resample, no convergence); the intervals use only the others."""
    level: float = LEVEL
    warnings: list[str] = field(default_factory=list)
    flags: dict[str, bool] = field(default_factory=dict)
    """Machine-readable versions of the warnings, e.g. underdetermined, extrapolated, at_bound."""
    draws: dict[str, np.ndarray] = field(default_factory=dict)
    """Successful bootstrap draws of each estimate (for derived numbers and plotted bands)."""
    data: dict[str, np.ndarray] = field(default_factory=dict)
    """The inputs and intermediate results the plots need."""

    def __getitem__(self, name: str) -> Estimate:
        return self.estimates[name]

    def value(self, name: str) -> float:
        return self.estimates[name].value

    def to_json_dict(self) -> dict:
        """`{"name": {"value": v, "low": lo, "high": hi}}`; non-finite numbers become null."""
        clean = lambda v: float(v) if np.isfinite(v) else None
        return {k: {"value": clean(e.value), "low": clean(e.low), "high": clean(e.high)}
                for k, e in self.estimates.items()}

    def warn(self, message: str, flag: str) -> None:
        """Record a caveat on the fit and raise it as a Python warning for library users."""
        self.warnings.append(message)
        self.flags[flag] = True
        warnings.warn(message, FitWarning, stacklevel=3)


# ----------------------------------------------------------------------------- input checks and bootstrap


def positive_array(name: str, values, n: int | None = None) -> np.ndarray:
    """A 1-D float array of finite positive numbers, else a UserError naming the input."""
    a = np.asarray(values, dtype=float).reshape(-1)
    if n is not None and a.size != n:
        raise UserError(f"{name} has {a.size} values, expected {n} (one per point)")
    if not np.all(np.isfinite(a)):
        raise UserError(f"{name} has non-finite values")
    if np.any(a <= 0):
        raise UserError(f"{name} must be positive (got {a[a <= 0][0]:g})")
    return a


def require_distinct(x: np.ndarray, need: int, what: str) -> None:
    """Too few distinct x values to fit `need` parameters is a user error, not a silent bad fit."""
    k = np.unique(x).size
    if k < need:
        raise UserError(f"{what} needs at least {need} distinct x values, got {k}")


def count_distinct(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Distinct values of x (n,) or columns of x (d, n) among the points with positive weight, per row of w."""
    _, inverse = np.unique(x, axis=-1, return_inverse=True)
    onehot = np.eye(inverse.max() + 1)[inverse.reshape(-1)]  # (n, distinct)
    return ((w > 0) @ onehot > 0).sum(axis=1)


def bootstrap_weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) resampling counts: drawing n points with replacement is a multinomial count vector."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)


def with_data_row(w: np.ndarray, n: int) -> np.ndarray:
    """Prepend the all-ones row (the actual data) to bootstrap weights, so one batch fits both."""
    return np.vstack([np.ones((1, n)), w])


def quantiles(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of draws; infinities (e.g. a loss the reference never reaches) stay infinite."""
    d = np.asarray(draws, dtype=float)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return float("nan"), float("nan")
    big = np.finfo(float).max
    lo, hi = np.quantile(np.clip(d, -big, big), [(1 - level) / 2, (1 + level) / 2])
    fix = lambda v: np.sign(v) * np.inf if abs(v) > 1e300 else float(v)
    return fix(lo), fix(hi)


def summarise(point: dict[str, float], draws: dict[str, np.ndarray], level: float) -> dict[str, Estimate]:
    """Estimates with percentile intervals from the (successful) draws of each named number."""
    out = {}
    for name, v in point.items():
        lo, hi = quantiles(draws[name], level) if name in draws else (float("nan"), float("nan"))
        out[name] = Estimate(float(v), lo, hi)
    return out


def split_rows(values: dict[str, np.ndarray], ok: np.ndarray) -> tuple[dict, dict]:
    """Row 0 of each batch is the fit to the data; rows 1.. are refits, kept where `ok`."""
    point = {k: float(v[0]) for k, v in values.items()}
    draws = {k: np.asarray(v[1:])[ok[1:]] for k, v in values.items()}
    return point, draws


# ----------------------------------------------------------------------------- variable projection core


def bounded_ls(sw, sz, szz, sy, szy, syy):
    """Weighted least squares of y on [1, z] with E >= 0 and A >= 0, from the weighted moments.

    A two-variable convex problem: if the free solution is infeasible the optimum lies on an edge,
    so trying both edges (each clipped at zero) and keeping the lower error is exact.
    """
    sse = lambda E, A: syy - 2 * E * sy - 2 * A * szy + E * E * sw + 2 * E * A * sz + A * A * szz
    with np.errstate(divide="ignore", invalid="ignore"):
        A = (sw * szy - sz * sy) / (sw * szz - sz * sz)
        E = (sy - A * sz) / sw
        A0 = np.maximum(szy / szz, 0.0)  # edge E = 0
        E0 = np.maximum(sy / sw, 0.0)  # edge A = 0
    free_ok = (E >= 0) & (A >= 0) & np.isfinite(A)
    e_edge, a_edge = sse(0.0, A0), sse(E0, 0.0)
    use_e = e_edge <= a_edge
    E = np.where(free_ok, E, np.where(use_e, 0.0, E0))
    A = np.where(free_ok, A, np.where(use_e, A0, 0.0))
    return E, A, sse(E, A)


def _moments(z: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Weighted moments for `bounded_ls`; z (..., n) broadcasts against y and w (B, n) along the last axis."""
    wy = w * y
    return ((w).sum(-1), (w * z).sum(-1), (w * z * z).sum(-1), wy.sum(-1), (wy * z).sum(-1), (wy * y).sum(-1))


def _grid_moments(z: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Moments for every (batch row, grid point) pair: z (G, n) shared across rows; matrix products."""
    wy = w * y
    col = lambda v: v.sum(-1)[:, None]
    return col(w), w @ z.T, w @ (z * z).T, col(wy), wy @ z.T, col(wy * y)


def _golden(f, lo: np.ndarray, hi: np.ndarray, iters: int = 48) -> np.ndarray:
    """Vectorised golden-section minimisation of f (one value per row) on [lo, hi] per row."""
    g = (np.sqrt(5) - 1) / 2
    a, b = lo.copy(), hi.copy()
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        left = fc < fd  # the minimum lies in [a, d]: drop (d, b], the old c becomes the new d
        b, a = np.where(left, d, b), np.where(left, a, c)
        new = np.where(left, b - g * (b - a), a + g * (b - a))
        f_new = f(new)  # one evaluation per row per step: the other interior point is reused
        c, d = np.where(left, new, d), np.where(left, c, new)
        fc, fd = np.where(left, f_new, fd), np.where(left, fc, f_new)
    return (a + b) / 2


@dataclass
class PowerLawBatch:
    """One power-law fit per batch row (row 0 is usually the data, rows 1.. bootstrap resamples)."""

    E: np.ndarray
    A: np.ndarray
    alpha: np.ndarray
    ok: np.ndarray
    at_bound: np.ndarray


def solve_power_law(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> PowerLawBatch:
    """Least-squares fits of y = E + A·x^(-alpha), E >= 0, A >= 0, one per row of weights w (B, n).

    y is (n,) or (B, n). The grid over alpha is the multi-start; golden section between the grid
    neighbours of the best point refines it. x is centred in log space so x^(-alpha) neither
    overflows nor underflows for x = FLOPs.
    """
    lx = np.log(x)
    shift = lx.mean()
    lx = lx - shift
    y = np.broadcast_to(y, w.shape)
    z = np.exp(-_ALPHA_GRID[:, None] * lx[None, :])  # (G, n)
    sse = bounded_ls(*_grid_moments(z, y, w))[2]  # (B, G)
    g = np.nanargmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    la = np.log(_ALPHA_GRID)
    lo, hi = la[np.maximum(g - 1, 0)], la[np.minimum(g + 1, la.size - 1)]

    def profile(log_alpha):
        zb = np.exp(-np.exp(log_alpha)[:, None] * lx[None, :])
        return bounded_ls(*_moments(zb, y, w))

    alpha = np.exp(_golden(lambda t: profile(t)[2], lo, hi))
    E, A, _ = profile(np.log(alpha))
    A = A * np.exp(alpha * shift)  # undo the centring: A_s·(x/x0)^-alpha = A_s·x0^alpha·x^-alpha
    ok = (count_distinct(x, w) >= 3) & np.isfinite(E) & np.isfinite(A) & np.isfinite(alpha)
    # E = 0 is a bound too: the least-squares asymptote would be negative, so the data do not pin it down
    at_bound = (g == 0) | (g == la.size - 1) | (A <= 0) | (E <= 0)
    return PowerLawBatch(E, A, alpha, ok, at_bound)


def aligned(values: dict[str, np.ndarray], ok: np.ndarray) -> dict[str, np.ndarray]:
    """Every refit's numbers by draw index (nan where a refit failed): fits made from the same paired draws
    can then be compared draw by draw (a multiple of the joint limit, a difference of two asymptotes)."""
    return {k: np.where(ok[1:], np.asarray(v, dtype=float)[1:], np.nan) for k, v in values.items()}


def power_law(x, E: float, A: float, alpha: float) -> np.ndarray:
    """L(x) = E + A·x^(-alpha)."""
    return E + A * np.asarray(x, dtype=float) ** (-alpha)


# ----------------------------------------------------------------------------- power law


def fit_power_law(x, y, *, n_boot: int = 1000, seed: int = 0, level: float = LEVEL, y_draws=None) -> Fit:
    """Fit y = E + A·x^(-alpha) (x: params, members K, tokens or FLOPs) with bootstrap CIs.

    E is the asymptote: the loss no amount of x gets below, and the number most often quoted far
    outside the data. Intervals are percentile intervals over refits to resampled points; with
    `y_draws` (n_draws, n), over refits to those resampled measurements instead (e.g. the losses
    recomputed on resampled val windows), which carries measurement noise into fits of few points.
    """
    x = positive_array("x", x)
    y = positive_array("y", y, n=x.size)
    require_distinct(x, 3, "a power law with asymptote (3 parameters)")
    if y_draws is not None:
        y = np.vstack([y, np.asarray(y_draws, dtype=float).reshape(-1, x.size)])
        n_boot = y.shape[0] - 1
        w = np.ones_like(y)
    else:
        rng = np.random.default_rng(seed)
        w = with_data_row(bootstrap_weights(rng, x.size, n_boot), x.size)
    b = solve_power_law(x, y, w)
    values = {"E": b.E, "A": b.A, "alpha": b.alpha}
    point, draws = split_rows(values, b.ok)
    fit = Fit("power_law", summarise(point, draws, level), x.size, n_boot, int((~b.ok[1:]).sum()),
              level, draws=draws, data={"x": x, "y": y[0] if y.ndim == 2 else y, "aligned": aligned(values, b.ok)})
    _flag_power_law(fit, x, b.at_bound[0], "the power law", y_draws is not None)
    return fit


def _flag_power_law(fit: Fit, x: np.ndarray, at_bound: bool, what: str, measured: bool = False) -> None:
    """Warn when a 3-parameter fit has no spare points or its optimum sits on a bound."""
    if measured and np.unique(x).size <= 3:
        fit.warn(f"{what} passes through its {np.unique(x).size} points: its interval carries their measurement "
                 "noise only, not how well a power law describes them", "underdetermined")
    elif np.unique(x).size <= 3:
        fit.warn(f"{what} is under-determined: 3 parameters from {np.unique(x).size} distinct points "
                 "(it passes through them; the interval says little)", "underdetermined")
    if at_bound:
        fit.warn(f"{what} hit a bound (alpha in [{ALPHA_BOUNDS[0]:g}, {ALPHA_BOUNDS[1]:g}], E >= 0, A >= 0): its "
                 "asymptote is not identified; the data may not follow a decreasing power law with an asymptote",
                 "at_bound")


# ----------------------------------------------------------------------------- joint two-step limit


def fit_joint(params, members, loss, *, n_boot: int = 1000, seed: int = 0, level: float = LEVEL,
              y_draws=None) -> Fit:
    """Joint limit in two steps: per model size N, L(K) = E_N + A_N·K^(-a_N); then E_N = E + A·N^(-alpha).

    E is the loss of an infinite ensemble of infinitely large models. Both stages are bootstrapped:
    points are resampled within each size for stage 1 and, when there are more sizes than stage-2
    parameters, sizes are resampled for stage 2; with 3 sizes only stage-1 noise is propagated. With
    `y_draws` (n_draws, n: every point's loss measured again, e.g. on resampled val windows with seed noise),
    stage 1 refits each size on each draw and stage 2 refits the E_N of that draw, so E's interval carries
    the measurements' noise through both stages (and `data["aligned"]` keeps the draws by index).
    """
    N = positive_array("params", params)
    K = positive_array("members", members, n=N.size)
    L = positive_array("loss", loss, n=N.size)
    sizes = np.unique(N)
    if sizes.size < 3:
        raise UserError(f"the joint fit needs at least 3 model sizes (distinct params), got {sizes.size}")
    rng = np.random.default_rng(seed)
    if y_draws is not None:
        y = np.vstack([L, np.asarray(y_draws, dtype=float).reshape(-1, N.size)])
        n_boot = y.shape[0] - 1
        stage1 = [_joint_stage1_measured(K[N == n], y[:, N == n], n) for n in sizes]
    else:
        stage1 = [_joint_stage1(K[N == n], L[N == n], n, rng, n_boot) for n in sizes]
    e_n = np.stack([s.E for s in stage1], axis=1)  # (1 + n_boot, sizes)
    w2 = np.ones_like(e_n)
    if sizes.size > 3 and y_draws is None:
        w2[1:] = bootstrap_weights(rng, sizes.size, n_boot)
    b = solve_power_law(sizes, e_n, w2)
    ok = b.ok & np.all([s.ok for s in stage1], axis=0)
    values = {"E": b.E, "A": b.A, "alpha": b.alpha} | {f"E_N={n:.4g}": e_n[:, i] for i, n in enumerate(sizes)}
    point, draws = split_rows(values, ok)
    data = {"params": N, "members": K, "loss": L, "sizes": sizes, "aligned": aligned(values, ok),
            "A_N": np.array([s.A[0] for s in stage1]), "alpha_N": np.array([s.alpha[0] for s in stage1])}
    fit = Fit("joint", summarise(point, draws, level), N.size, n_boot, int((~ok[1:]).sum()), level,
              draws=draws, data=data)
    _flag_joint(fit, K, N, sizes, stage1, b)
    return fit


def _joint_stage1(k: np.ndarray, loss: np.ndarray, n: float, rng, n_boot: int) -> PowerLawBatch:
    """Stage 1 for one model size: loss against ensemble members, resampling that size's points."""
    require_distinct(k, 3, f"the member fit at params={n:.4g}")
    return solve_power_law(k, loss, with_data_row(bootstrap_weights(rng, k.size, n_boot), k.size))


def _joint_stage1_measured(k: np.ndarray, y: np.ndarray, n: float) -> PowerLawBatch:
    """Stage 1 for one model size on measured draws: y (1 + n_draws, points), row 0 the data."""
    require_distinct(k, 3, f"the member fit at params={n:.4g}")
    return solve_power_law(k, y, np.ones_like(y))


def _flag_joint(fit: Fit, K, N, sizes, stage1, b: PowerLawBatch) -> None:
    for n, s in zip(sizes, stage1):
        _flag_power_law(fit, K[N == n], s.at_bound[0], f"the member fit at params={n:.4g}")
    _flag_power_law(fit, sizes, b.at_bound[0], "the fit of E_N against params")
    if sizes.size <= 3:
        fit.warn("with 3 sizes the stage-2 fit is exact; its interval reflects stage-1 noise only",
                 "stage2_not_resampled")


# ----------------------------------------------------------------------------- data-constrained scaling


def effective_data(unique_tokens, tokens, r_star) -> np.ndarray:
    """Muennighoff et al. (2023): D' = U + U·R*·(1 - exp(-R/R*)), R = D/U - 1 repeated epochs.

    Repeated tokens are worth less than fresh ones, decaying with half-life-like constant R*; a run
    that sees fewer tokens than are unique has D' = D.
    """
    U = np.asarray(unique_tokens, dtype=float)
    D = np.asarray(tokens, dtype=float)
    seen = np.minimum(U, D)
    R = np.maximum(D / U - 1.0, 0.0)
    return seen + seen * r_star * (-np.expm1(-R / r_star))


def fit_data_constrained(unique_tokens, tokens, loss, *, n_boot: int = 1000, seed: int = 0,
                         level: float = LEVEL) -> Fit:
    """Fit L = E + B·D'^(-beta) with D' the effective data of Muennighoff et al.; parameters E, B, beta, R*.

    For runs of one model size. E and B are solved in closed form for each (beta, R*) on a grid,
    then the grid is zoomed around each row's best point; every bootstrap resample is a batch row.
    """
    U = positive_array("unique_tokens", unique_tokens)
    D = positive_array("tokens", tokens, n=U.size)
    L = positive_array("loss", loss, n=U.size)
    if not np.any(D > U * 1.01):
        raise UserError("the data-constrained fit needs multi-epoch runs (tokens > unique_tokens)")
    if U.size < 5:
        raise UserError(f"the data-constrained fit (4 parameters) needs at least 5 runs, got {U.size}")
    rng = np.random.default_rng(seed)
    w = with_data_row(bootstrap_weights(rng, U.size, n_boot), U.size)
    E, B, beta, r_star, ok, at_bound = _solve_data_constrained(U, D, L, w)
    point, draws = split_rows({"E": E, "B": B, "beta": beta, "R_star": r_star}, ok)
    fit = Fit("data_constrained", summarise(point, draws, level), U.size, n_boot, int((~ok[1:]).sum()),
              level, draws=draws, data={"unique_tokens": U, "tokens": D, "loss": L})
    if U.size <= 5:
        fit.warn("4 parameters from 5 runs: the fit has one spare point", "underdetermined")
    if at_bound[0]:
        fit.warn(f"R* or beta hit a bound (R* in {R_STAR_BOUNDS}, beta in {BETA_BOUNDS}); "
                 "repetition may be as good as fresh data here, or the runs do not pin R* down", "at_bound")
    return fit


def _solve_data_constrained(U, D, L, w, zooms: int = 5, k: int = 11):
    """Profile (beta, log R*) on a coarse grid, then zoom a k x k grid around each row's optimum."""
    scale = np.exp(np.log(U).mean())  # D' in units of a typical U keeps D'^-beta finite

    def sse_at(lb, lr):  # lb, lr: (B, M) log beta and log R*; returns E, B, sse (B, M)
        dp = effective_data(U, D, np.exp(lr)[..., None]) / scale  # (B, M, n)
        z = dp ** -np.exp(lb)[..., None]
        return bounded_ls(*_moments(z, L[None, None, :], w[:, None, :]))

    lb0 = np.linspace(*np.log(BETA_BOUNDS), 40)
    lr0 = np.linspace(*np.log(R_STAR_BOUNDS), 40)
    gb, gr = [v.reshape(-1) for v in np.meshgrid(lb0, lr0)]
    # The coarse grid is shared by all rows, so its moments are matrix products.
    z = (effective_data(U, D, np.exp(gr)[:, None]) / scale) ** -np.exp(gb)[:, None]  # (G, n)
    sse = bounded_ls(*_grid_moments(z, L, w))[2]
    i = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    cb, cr = gb[i], gr[i]
    steps = np.array([lb0[1] - lb0[0], lr0[1] - lr0[0]])
    at_bound = (np.isclose(cb, lb0[0]) | np.isclose(cb, lb0[-1]) | np.isclose(cr, lr0[0]) | np.isclose(cr, lr0[-1]))
    offs = np.linspace(-1, 1, k)
    for _ in range(zooms):
        ob, orr = [v.reshape(1, -1) for v in np.meshgrid(offs * steps[0], offs * steps[1])]
        gb = np.clip(cb[:, None] + ob, *np.log(BETA_BOUNDS))
        gr = np.clip(cr[:, None] + orr, *np.log(R_STAR_BOUNDS))
        cb, cr = _best_cell(sse_at, gb, gr)
        steps = steps * 2 / (k - 1)
    E, B, _ = sse_at(cb[:, None], cr[:, None])
    E, B = E[:, 0], B[:, 0] * scale ** np.exp(cb)
    ok = (count_distinct(np.stack([U, D]), w) >= 5) & np.isfinite(E) & np.isfinite(B)
    return E, B, np.exp(cb), np.exp(cr), ok, at_bound


def _best_cell(sse_at, gb: np.ndarray, gr: np.ndarray):
    """The (log beta, log R*) of the least-squares grid point in each row."""
    sse = sse_at(gb, gr)[2]
    i = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    rows = np.arange(gb.shape[0])
    return gb[rows, i], gr[rows, i]
