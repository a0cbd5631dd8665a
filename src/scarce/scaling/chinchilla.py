"""Chinchilla compute-optimal scaling (Hoffmann et al., 2022): approaches 1, 2 and 3, and the optimal allocation.

Approach 3 follows the paper's recipe exactly -- L(N, D) = E + A/N^alpha + B/D^beta written as
log L = LSE(a - alpha·log N, b - beta·log D, e), a Huber loss (delta = 1e-3) on log loss summed over
points, L-BFGS from a grid of 4,500 starts, best result kept -- but runs every start (and every
bootstrap resample) as one row of a batched L-BFGS in torch instead of one scipy call per start,
then polishes the best few with scipy. Besiroglu et al. (2024, arXiv:2404.10102) showed the
published fit stopped early because the summed Huber loss is tiny; we divide it by delta so the
stopping rules see numbers of order one, and polish with tight tolerances.

Compute is C = 6·N·D throughout.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from scarce.errors import UserError
from scarce.scaling.laws import (
    LEVEL,
    Fit,
    bootstrap_weights,
    count_distinct,
    positive_array,
    split_rows,
    summarise,
    with_data_row,
)

HUBER_DELTA = 1e-3
PARAM_NAMES = ("a", "b", "e", "alpha", "beta")  # columns of theta: A = exp(a), B = exp(b), E = exp(e)


# ----------------------------------------------------------------------------- closed-form allocation


def compute_optimal(flops, A: float, B: float, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """N_opt(C), D_opt(C) minimising E + A/N^alpha + B/D^beta subject to C = 6ND (Hoffmann et al., eq. 4).

    N_opt = G·(C/6)^a, D_opt = (C/6)^b / G, with a = beta/(alpha+beta), b = alpha/(alpha+beta) and
    G = (alpha·A / (beta·B))^(1/(alpha+beta)). E does not move the optimum.
    """
    g = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    n = g * (np.asarray(flops, dtype=float) / 6.0) ** (beta / (alpha + beta))
    return n, np.asarray(flops, dtype=float) / (6.0 * n)


def optimal_loss(flops, E: float, A: float, B: float, alpha: float, beta: float) -> np.ndarray:
    """The loss on the compute-optimal frontier, L*(C) = E + A/N_opt^alpha + B/D_opt^beta."""
    n, d = compute_optimal(flops, A, B, alpha, beta)
    return E + A * n ** (-alpha) + B * d ** (-beta)


def flops_for_loss(target, E: float, A: float, B: float, alpha: float, beta: float) -> np.ndarray:
    """The least compute reaching `target` loss: inverts L*(C) in closed form; inf where target <= E.

    At the optimum alpha·A/N^alpha = beta·B/D^beta, so L*(C) - E = (1 + alpha/beta)·A/N_opt^alpha,
    a pure power of C with exponent -alpha·beta/(alpha+beta).
    """
    target = np.asarray(target, dtype=float)
    n1, _ = compute_optimal(6.0, A, B, alpha, beta)  # N_opt at C/6 = 1
    k = (1 + alpha / beta) * A * n1 ** (-alpha)
    gamma = alpha * beta / (alpha + beta)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = 6.0 * ((target - E) / k) ** (-1.0 / gamma)
    return np.where(target > E, c, np.inf)


# ----------------------------------------------------------------------------- approach 3


def hoffmann_grid() -> np.ndarray:
    """The 4,500 starts of Hoffmann et al. (appendix D.2), columns (a, b, e, alpha, beta).

    alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}.
    """
    ab = np.arange(0.0, 30.0, 5.0)
    ex = np.arange(-1.0, 1.5, 0.5)
    ag = np.arange(0.0, 2.5, 0.5)
    return np.array(list(itertools.product(ab, ab, ex, ag, ag)), dtype=float)


def huber_objective(theta, lN, lD, lL, w, delta: float = HUBER_DELTA):
    """Σ_i w_i·Huber_delta(r_i)/delta and its gradient, r = LSE(a - alpha·lN, b - beta·lD, e) - lL.

    theta (S, 5) torch float64, w (S, n) point weights (bootstrap counts). Returns f (S,), grad (S, 5).
    Analytic gradient: dr/d(a, b, e) are the softmax weights of the three terms.
    """
    import torch

    a, b, e, al, be = theta.unbind(1)
    u1 = a[:, None] - al[:, None] * lN  # (S, n)
    u2 = b[:, None] - be[:, None] * lD
    m = torch.maximum(torch.maximum(u1, u2), e[:, None])
    x1, x2, x3 = (u1 - m).exp_(), (u2 - m).exp_(), (e[:, None] - m).exp_()
    s = x1 + x2 + x3
    r = m + s.log() - lL
    c = r.clamp(-delta, delta)  # Huber'(r)
    f = (w * c * (r - 0.5 * c)).sum(1) / delta  # c·(r - c/2) is Huber: r²/2 inside, delta·(|r| - delta/2) outside
    gr = w * c / (delta * s)
    g1, g2 = gr * x1, gr * x2
    grad = torch.stack([g1.sum(1), g2.sum(1), (gr * x3).sum(1), -(g1 @ lN), -(g2 @ lD)], 1)
    return f, grad


@dataclass
class LbfgsResult:
    x: np.ndarray
    f: np.ndarray
    status: np.ndarray
    """0 converged, 1 hit max_iter, 2 dropped as unable to reach its group's best objective, 3 non-finite."""
    n_iter: np.ndarray


def batched_lbfgs(fun, x0: np.ndarray, group: np.ndarray, *, history: int = 10, max_iter: int = 1000,
                  ftol: float = 1e-10, gtol: float = 1e-8, check_every: int = 50, dtype=None) -> LbfgsResult:
    """Minimise many independent problems at once: one L-BFGS per row of x0, sharing every tensor op.

    fun(x, rows) returns (f, grad) for the problems `rows`. Each row keeps its own history, step
    and stopping test (relative decrease < ftol, as scipy's, or max |grad| < gtol); finished rows
    leave the batch. Rows in the same `group` solve the same problem from different starts: a row
    whose rate of progress cannot close its gap to the group's best within max_iter is dropped
    (Huber kinks leave some starts crawling on plateaus for thousands of steps).
    """
    import torch

    x = torch.tensor(x0, dtype=dtype or torch.float64)
    S, p = x.shape
    group_t = torch.as_tensor(group, dtype=torch.long)
    n_groups = int(group_t.max()) + 1
    rows = torch.arange(S)
    f, g = fun(x, rows)
    hist_s, hist_y = torch.zeros(history, S, p, dtype=x.dtype), torch.zeros(history, S, p, dtype=x.dtype)
    rho = torch.zeros(history, S, dtype=x.dtype)
    status = torch.full((S,), -1, dtype=torch.long)
    n_iter = torch.zeros(S, dtype=torch.long)
    f_check = f.clone()
    for it in range(1, max_iter + 1):
        idx = torch.nonzero(status < 0).squeeze(1)
        if idx.numel() == 0:
            break
        d = _two_loop(g[idx], hist_s[:, idx], hist_y[:, idx], rho[:, idx])
        x_new, f_new, g_new, moved = _backtrack(fun, x[idx], f[idx], g[idx], d, idx)
        s, y = x_new - x[idx], g_new - g[idx]
        sy = (s * y).sum(1)
        upd = moved & (sy > 1e-12 * s.norm(dim=1) * y.norm(dim=1))  # keep the curvature pairs positive
        _push_pairs(hist_s, hist_y, rho, idx[upd], s[upd], y[upd], sy[upd])
        rel = (f[idx] - f_new) / torch.clamp(torch.maximum(f[idx].abs(), f_new.abs()), min=1.0)
        x[idx], f[idx], g[idx] = x_new, f_new, g_new
        n_iter[idx] += 1
        done = ~moved | (rel < ftol) | (g_new.abs().amax(1) < gtol)
        status[idx[done]] = 0
        status[idx[~torch.isfinite(f_new)]] = 3
        if it % check_every == 0:
            _drop_hopeless(f, f_check, status, group_t, n_groups, (max_iter - it) / check_every)
            f_check = f.clone()
    status[status < 0] = 1
    return LbfgsResult(x.double().numpy(), f.double().numpy(), status.numpy(), n_iter.numpy())


def _push_pairs(hist_s, hist_y, rho, rows, s, y, sy) -> None:
    """Append one (s, y) curvature pair to each of `rows`' histories, dropping its oldest pair."""
    for h in (hist_s, hist_y, rho):
        h[:, rows] = h[:, rows].roll(-1, 0)
    hist_s[-1, rows], hist_y[-1, rows], rho[-1, rows] = s, y, 1.0 / sy


def _two_loop(g, hs, hy, rho):
    """L-BFGS direction -H·g per row from the stored pairs (oldest first); empty slots have rho = 0."""
    import torch

    q = g.clone()
    alphas = []
    for j in range(hs.shape[0] - 1, -1, -1):
        a = rho[j] * (hs[j] * q).sum(1)
        q -= a[:, None] * hy[j]
        alphas.append(a)
    yy = (hy[-1] * hy[-1]).sum(1)
    gamma = torch.where(rho[-1] > 0, 1.0 / (rho[-1] * yy).clamp(min=1e-300), 1.0 / g.abs().sum(1).clamp(min=1e-12))
    r = gamma[:, None] * q
    for j, a in zip(range(hs.shape[0]), reversed(alphas)):
        b = rho[j] * (hy[j] * r).sum(1)
        r += (a - b)[:, None] * hs[j]
    d = -r
    uphill = (d * g).sum(1) >= 0  # a stale history can point uphill: fall back to steepest descent
    d[uphill] = -gamma[uphill, None] * g[uphill]
    return d


def _backtrack(fun, x, f, g, d, rows, c1: float = 1e-4, halvings: int = 40):
    """Armijo backtracking from step 1, per row; rows that find no decrease keep their point (moved=False)."""
    import torch

    gd = (g * d).sum(1)
    t = torch.ones(x.shape[0], dtype=x.dtype)
    x_new, f_new, g_new = x.clone(), f.clone(), g.clone()
    moved = torch.zeros(x.shape[0], dtype=torch.bool)
    pend = torch.arange(x.shape[0])
    for _ in range(halvings):
        xt = x[pend] + t[pend, None] * d[pend]
        ft, gt = fun(xt, rows[pend])
        ok = ft <= f[pend] + c1 * t[pend] * gd[pend]
        acc = pend[ok]
        x_new[acc], f_new[acc], g_new[acc], moved[acc] = xt[ok], ft[ok], gt[ok], True
        pend = pend[~ok]
        if pend.numel() == 0:
            break
        t[pend] *= 0.5
    return x_new, f_new, g_new, moved


def _drop_hopeless(f, f_check, status, group, n_groups: int, checks_left: float) -> None:
    """Stop running rows that, at their progress over the last window, cannot reach their group's best."""
    import torch

    best = torch.full((n_groups,), float("inf"), dtype=f.dtype).scatter_reduce(0, group, f, "amin")
    gap = f - best[group]
    running = status < 0
    hopeless = running & (gap > 1e-6 * best[group].abs().clamp(min=1.0)) & ((f_check - f) * checks_left < gap)
    status[hopeless] = 2


def _polish(theta: np.ndarray, objective) -> tuple[np.ndarray, float, bool]:
    """scipy L-BFGS-B from one start with tight tolerances (the batched result is already close)."""
    from scipy.optimize import minimize

    res = minimize(objective, theta, jac=True, method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 20000, "maxcor": 20})
    return res.x, float(res.fun), bool(res.success) or "ABNORMAL" in str(res.message)


def _distinct_minima(f: np.ndarray, k: int, rtol: float = 1e-5) -> list[int]:
    """Indices of the k lowest objectives that differ from each other by more than rtol (relative).

    Starts that ended in one basin agree on the objective to about the stopping tolerance, while
    different basins differ by far more; parameters are a poor test, since A and B are loosely pinned.
    """
    chosen: list[int] = []
    for i in np.argsort(f):
        if not np.isfinite(f[i]) or len(chosen) == k:
            break
        if all(abs(f[i] - f[j]) > rtol * max(1.0, abs(f[j])) for j in chosen):
            chosen.append(int(i))
    return chosen


def fit_approach3(params, tokens, loss, *, n_boot: int = 1000, seed: int = 0, level: float = LEVEL,
                  delta: float = HUBER_DELTA, starts: np.ndarray | None = None, n_polish: int = 5,
                  boot_starts: int = 3, max_iter: int = 1000, threads: int = 1) -> Fit:
    """Approach 3: fit L(N, D) = E + A/N^alpha + B/D^beta as Hoffmann et al. did, with bootstrap CIs.

    Estimates E, A, B, alpha, beta and the allocation exponents a = beta/(alpha+beta) (N_opt ∝ C^a),
    b = alpha/(alpha+beta) (D_opt ∝ C^b). The search runs in three stages: L-BFGS from every start
    of the grid in float32 (5x faster per step; it only has to find the basins), the best 5% of
    starts continued in float64, then the best `n_polish` distinct minima polished with scipy.
    Each bootstrap refit starts from the `boot_starts` best distinct minima of the full fit rather
    than the whole grid (on the Chinchilla data the grid's other basins are 10x worse).

    `threads` torch threads (default 1): the batch is thousands of small ops, each a barrier across
    threads, so on a shared machine a second thread that gets descheduled stalls every op (measured on 2
    busy cores: 48 s with 2 threads against 2.9 s with 1); on an idle machine 2 threads gain ~20%.
    """
    with _torch_threads(threads):
        return _fit_approach3(params, tokens, loss, n_boot, seed, level, delta, starts, n_polish, boot_starts,
                              max_iter)


@contextmanager
def _torch_threads(n: int):
    """Run with n torch threads, then restore the caller's setting."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _fit_approach3(params, tokens, loss, n_boot, seed, level, delta, starts, n_polish, boot_starts, max_iter) -> Fit:
    N = positive_array("params", params)
    D = positive_array("tokens", tokens, n=N.size)
    L = positive_array("loss", loss, n=N.size)
    if count_distinct(np.stack([N, D]), np.ones((1, N.size)))[0] < 6:
        raise UserError(f"approach 3 (5 parameters) needs at least 6 distinct (params, tokens) points, got {N.size}")
    w = with_data_row(bootstrap_weights(np.random.default_rng(seed), N.size, n_boot), N.size)
    problem = _Problem(N, D, L, w, delta)
    grid = hoffmann_grid() if starts is None else np.asarray(starts, dtype=float)
    found = _search_grid(problem, grid, max_iter)
    theta, basins, ok0 = _best_polished(problem, found, n_polish, boot_starts)
    thetas = np.vstack([theta[None], _bootstrap_refits(problem, basins, n_boot, max_iter)])
    ok = np.isfinite(thetas).all(1)
    ok[0] = ok0
    fit = _approach3_fit(thetas, ok, N, D, L, n_boot, level)
    if not ok0:
        fit.warn("the polished approach-3 fit did not report convergence", "not_converged")
    return fit


class _Problem:
    """The data of an approach-3 fit in torch, and objectives for given rows of the weight matrix."""

    def __init__(self, N, D, L, w, delta: float):
        import torch

        self.delta = delta
        self.logs = {dt: [torch.tensor(np.log(v), dtype=dt) for v in (N, D, L)]
                     for dt in (torch.float32, torch.float64)}
        self.w = {dt: torch.tensor(w, dtype=dt) for dt in self.logs}

    def fun(self, weight_row: np.ndarray):
        """fun(theta, rows) for batched_lbfgs: problem rows[i] uses weight row weight_row[rows[i]]."""
        import torch

        weight_row = torch.as_tensor(weight_row, dtype=torch.long)
        same = bool((weight_row == weight_row[0]).all())  # one problem: broadcast its weights, no gather

        def f(theta, rows):
            w = self.w[theta.dtype]
            rows_w = w[weight_row[:1]] if same else w[weight_row[rows]]
            return huber_objective(theta, *self.logs[theta.dtype], rows_w, self.delta)

        return f

    def scalar(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The data objective (weight row 0) and gradient at one theta, for scipy."""
        import torch

        f, g = huber_objective(torch.tensor(theta[None]), *self.logs[torch.float64], self.w[torch.float64][:1],
                               self.delta)
        return float(f[0]), g[0].numpy()


def _search_grid(problem: _Problem, grid: np.ndarray, max_iter: int, keep: float = 0.05) -> LbfgsResult:
    """L-BFGS from every start in float32, then the best `keep` fraction continued in float64."""
    import torch

    zeros = np.zeros(len(grid), dtype=int)
    rough = batched_lbfgs(problem.fun(zeros), grid, zeros, max_iter=max_iter, ftol=1e-7, gtol=1e-6,
                          dtype=torch.float32)
    f = np.where(rough.status >= 2, np.inf, rough.f)
    best = np.argsort(f)[: max(20, int(keep * len(grid)))]
    best = best[np.isfinite(f[best])]
    return batched_lbfgs(problem.fun(zeros[best]), rough.x[best], zeros[best], max_iter=max_iter)


def _best_polished(problem: _Problem, found: LbfgsResult, n_polish: int, boot_starts: int):
    """Polish the best results of distinct basins with scipy; return the best, up to boot_starts basins
    (best first) and whether the best polish converged."""
    cand = _distinct_minima(np.where(found.status >= 2, np.inf, found.f), n_polish)
    polished = [_polish(found.x[i], problem.scalar) for i in cand]
    keep = _distinct_minima(np.array([p[1] for p in polished]), boot_starts)
    basins = np.array([polished[i][0] for i in keep])
    return basins[0], basins, polished[keep[0]][2]


def _bootstrap_refits(problem: _Problem, basins: np.ndarray, n_boot: int, max_iter: int) -> np.ndarray:
    """One batched float64 L-BFGS over (resample x basin) rows; per resample keep its best converged row."""
    if n_boot == 0:
        return np.empty((0, 5))
    k = basins.shape[0]
    res_idx = np.repeat(np.arange(n_boot), k)
    res = batched_lbfgs(problem.fun(res_idx + 1), np.tile(basins, (n_boot, 1)), res_idx, max_iter=max_iter)
    f = np.where(res.status == 0, res.f, np.inf).reshape(n_boot, k)
    out = res.x.reshape(n_boot, k, 5)[np.arange(n_boot), f.argmin(1)]
    out[~np.isfinite(f.min(1))] = np.nan  # no start converged: a failed refit
    return out


def _approach3_fit(thetas: np.ndarray, ok: np.ndarray, N, D, L, n_boot: int, level: float) -> Fit:
    """Turn (a, b, e, alpha, beta) rows into the reported estimates and their derived numbers."""
    a, b, e, al, be = thetas.T
    values = {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": al, "beta": be,
              "a": be / (al + be), "b": al / (al + be)}
    point, draws = split_rows(values, ok)
    return Fit("chinchilla3", summarise(point, draws, level), N.size, n_boot, int((~ok[1:]).sum()), level,
               draws=draws, data={"params": N, "tokens": D, "loss": L})


# ----------------------------------------------------------------------------- approach 2 (IsoFLOP)


def isoflop_groups(flops, tol_dex: float = 0.05) -> np.ndarray:
    """Group ids for compute budgets: sorted log10 C values split wherever the gap exceeds tol_dex."""
    lc = np.log10(np.asarray(flops, dtype=float))
    order = np.argsort(lc)
    ids = np.empty(lc.size, dtype=int)
    ids[order] = np.concatenate([[0], np.cumsum(np.diff(lc[order]) > tol_dex)])
    return ids


def _parabola_minima(logn: np.ndarray, loss: np.ndarray, w: np.ndarray):
    """Weighted quadratic fits of loss in log N, one per row of w; returns argmin log N, min loss, ok."""
    u = logn - logn.mean()
    X = np.stack([np.ones_like(u), u, u * u], 1)  # (n, 3)
    M = np.einsum("bn,ni,nj->bij", w, X, X) + 1e-12 * np.eye(3)
    c = np.linalg.solve(M, np.einsum("bn,ni,n->bi", w, X, loss)[..., None])[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        u_star = -c[:, 1] / (2 * c[:, 2])
    ok = (c[:, 2] > 0) & (count_distinct(logn, w) >= 3)
    return u_star + logn.mean(), c[:, 0] + c[:, 1] * u_star + c[:, 2] * u_star**2, ok, c


def fit_approach2(params, flops, loss, *, n_boot: int = 1000, seed: int = 0, level: float = LEVEL,
                  tol_dex: float = 0.05) -> Fit:
    """Approach 2: per compute budget a parabola of loss in log N; then N_opt ∝ C^a, D_opt ∝ C^b.

    Points are resampled within each budget (every parabola refitted); with 4+ budgets the budgets
    are resampled too, so the interval on a also reflects how the minima scatter around the line.
    """
    N = positive_array("params", params)
    C = positive_array("flops", flops, n=N.size)
    L = positive_array("loss", loss, n=N.size)
    gid = isoflop_groups(C, tol_dex)
    n_groups = gid.max() + 1
    if n_groups < 2:
        raise UserError("approach 2 needs at least 2 compute budgets (IsoFLOP groups), got 1")
    rng = np.random.default_rng(seed)
    lc = np.array([np.log(C[gid == g]).mean() for g in range(n_groups)])
    minima = [_group_minimum(np.log(N[gid == g]), L[gid == g], rng, n_boot, g, lc[g]) for g in range(n_groups)]
    logn = np.stack([m[0] for m in minima], 1)  # (1 + n_boot, budgets)
    wb = np.ones_like(logn)
    if n_groups >= 4:
        wb[1:] = bootstrap_weights(rng, n_groups, n_boot)
    slope, _ = _weighted_line(lc, logn, wb)
    ok = np.all([m[1] for m in minima], axis=0) & (count_distinct(lc, wb) >= 2)
    values = {"a": slope, "b": 1 - slope}
    for g in range(n_groups):
        tag = f"C={np.exp(lc[g]):.3g}"
        values[f"N_opt[{tag}]"] = np.exp(logn[:, g])
        values[f"tokens_per_param[{tag}]"] = np.exp(lc[g]) / (6 * np.exp(2 * logn[:, g]))
    point, draws = split_rows(values, ok)
    fit = Fit("chinchilla2", summarise(point, draws, level), N.size, n_boot, int((~ok[1:]).sum()), level,
              draws=draws, data={"params": N, "flops": C, "loss": L, "group": gid, "log_flops": lc,
                                 "log_n_opt": logn[0], "coef": np.stack([m[2] for m in minima]),
                                 "center": np.array([m[3] for m in minima])})
    _flag_approach2(fit, N, gid, logn[0], n_groups)
    return fit


def _group_minimum(logn, loss, rng, n_boot: int, g: int, lc: float):
    """The parabola minimum of one budget for the data (row 0) and each resample of its points, whether
    each is a minimum, and the data's coefficients in u = log N - center."""
    if np.unique(logn).size < 3:
        raise UserError(f"IsoFLOP budget C={np.exp(lc):.3g} has {np.unique(logn).size} model sizes; "
                        "a parabola needs at least 3")
    w = with_data_row(bootstrap_weights(rng, logn.size, n_boot), logn.size)
    u, _, ok, c = _parabola_minima(logn, loss, w)
    return u, ok, c[0], logn.mean()


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Weighted least-squares slope and intercept of y (B, n) on x (n,), one per row."""
    sw = w.sum(1)
    mx, my = (w * x).sum(1) / sw, (w * y).sum(1) / sw
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (w * (x - mx[:, None]) * (y - my[:, None])).sum(1) / (w * (x - mx[:, None]) ** 2).sum(1)
    return slope, my - slope * mx


def _flag_approach2(fit: Fit, N, gid, logn, n_groups: int) -> None:
    for g in range(n_groups):
        ln = np.log(N[gid == g])
        if not ln.min() <= logn[g] <= ln.max():
            fit.warn(f"the parabola minimum of budget {g} lies outside its sampled model sizes "
                     "(extrapolated)", "extrapolated")
    if n_groups == 2:
        fit.warn("2 compute budgets: the exponent a is a line through 2 points", "underdetermined")


# ----------------------------------------------------------------------------- approach 1 (envelope)


def envelope(params, tokens, loss, n_bins: int = 40):
    """The lowest loss at each compute along the training curves, and the model size that reaches it.

    Each curve (one model size) is interpolated linearly in log C; returns log C grid, log N_opt, loss.
    """
    C = 6 * params * tokens
    lc_grid = np.linspace(np.log(C.min()), np.log(C.max()), n_bins)
    best = np.full(n_bins, np.inf)
    n_opt = np.full(n_bins, np.nan)
    for n in np.unique(params):
        m = params == n
        order = np.argsort(C[m])
        lc, ls = np.log(C[m][order]), loss[m][order]
        inside = (lc_grid >= lc[0]) & (lc_grid <= lc[-1])
        cur = np.where(inside, np.interp(lc_grid, lc, ls), np.inf)
        better = cur < best
        best, n_opt = np.where(better, cur, best), np.where(better, np.log(n), n_opt)
    keep = np.isfinite(best)
    return lc_grid[keep], n_opt[keep], best[keep]


def fit_approach1(params, tokens, loss, *, n_boot: int = 1000, seed: int = 0, level: float = LEVEL,
                  n_bins: int = 40) -> Fit:
    """Approach 1: power laws of N and D at the loss envelope of the training curves against C.

    Rows are points on training curves (params, tokens seen so far, loss). The bootstrap resamples
    whole curves (model sizes), because points along one curve are not independent.
    """
    N = positive_array("params", params)
    D = positive_array("tokens", tokens, n=N.size)
    L = positive_array("loss", loss, n=N.size)
    sizes = np.unique(N)
    if sizes.size < 2:
        raise UserError(f"approach 1 needs training curves of at least 2 model sizes, got {sizes.size}")
    rng = np.random.default_rng(seed)
    picks = [sizes] + [rng.choice(sizes, sizes.size) for _ in range(n_boot)]
    slopes = np.array([_envelope_slope(N, D, L, p, n_bins) for p in picks])
    ok = np.isfinite(slopes)
    point, draws = split_rows({"a": slopes, "b": 1 - slopes}, ok)
    lc, ln, lbest = envelope(N, D, L, n_bins)
    fit = Fit("chinchilla1", summarise(point, draws, level), N.size, n_boot, int((~ok[1:]).sum()), level,
              draws=draws, data={"params": N, "tokens": D, "loss": L, "env_log_flops": lc,
                                 "env_log_n": ln, "env_loss": lbest})
    if np.unique(ln).size < 3:
        fit.warn(f"the envelope passes through {np.unique(ln).size} model sizes: the exponent is coarse",
                 "underdetermined")
    return fit


def _envelope_slope(N, D, L, picked: np.ndarray, n_bins: int) -> float:
    """Slope of log N_opt against log C along the envelope of the picked curves (nan if degenerate)."""
    m = np.isin(N, picked)
    lc, ln, _ = envelope(N[m], D[m], L[m], n_bins)
    if np.unique(ln).size < 2:
        return float("nan")
    return float(np.polyfit(lc, ln, 1)[0])
