"""Paired draws of every model's val loss: resampled val windows plus seed noise, the same draws for everyone.

Every interval of a bench result (the multiples, the fits, the findings' differences and shares) is a percentile
interval over these draws, so each carries the val windows (moving blocks, `scarce.scaling.paired`) and the seed
noise the bench measured where it repeats a setting (`scarce.scaling.noise`): an ensemble's members, several
students of one teacher. The reference points carry the seed noise pooled with their law's misfit. The draws are
paired: draw b of every model uses the same windows and, for a run two models share (member 0 is also the chosen
regularized run), the same seed noise. What no draw covers is the data sample (`bench --samples` does).
"""

from __future__ import annotations

import numpy as np

from scarce.bench.common import tokens_per_window
from scarce.bench.evaluations import Evaluations
from scarce.scaling.laws import quantiles
from scarce.scaling.noise import SeedNoise, lack_of_fit, model_noise, window_variance
from scarce.scaling.paired import resampled_losses

LEVEL = 0.95


class Measured:
    """Draws (n_boot,) of models' val losses; `noise` is the default seed noise, `groups` another one for named
    runs (the reference points, students whose own repeats measured theirs)."""

    def __init__(self, ev: Evaluations, n_boot: int, tpw: int, noise: SeedNoise):
        self.ev, self.n_boot, self.tpw, self.noise = ev, n_boot, tpw, noise
        self._sd: dict[int, np.ndarray] = {}
        self.unit_noise: dict[str, SeedNoise] = {}

    def use(self, units, noise: SeedNoise) -> None:
        """Runs `units` draw their seed noise from `noise` instead of the default."""
        for u in units:
            self.unit_noise[u] = noise

    def sd(self, noise: SeedNoise) -> np.ndarray:
        key = id(noise)
        if key not in self._sd:  # each noise its own stream: their uncertainties are independent estimates
            self._sd[key] = noise.sd_draws(self.n_boot, seed=1 + len(self._sd))
        return self._sd[key]

    def noise_of(self, units: list[str]) -> np.ndarray:
        """(n_boot,) seed noise of a model made of `units`: the mean of its runs' own draws."""
        if not units:
            return np.zeros(self.n_boot)
        return np.mean([model_noise([u], self.sd(self.unit_noise.get(u, self.noise))) for u in units], axis=0)

    def of(self, windows: np.ndarray, units: list[str]) -> np.ndarray:
        """(n_boot,) draws of one model from its per-window NLLs (n,) and its runs' ids."""
        return resampled_losses(np.asarray(windows)[None], self.tpw, self.n_boot)[:, 0] + self.noise_of(units)

    def runs(self, rows: list) -> np.ndarray:
        """(n_boot, runs): single runs, each its own model."""
        w = self.ev.windows(rows)
        return np.stack([self.of(w[i], [r["id"]]) for i, r in enumerate(rows)], axis=1)

    def prefixes(self, rows: list) -> np.ndarray:
        """(n_boot, K): the ensembles of the first k members, k = 1..K."""
        w = self.ev.prefixes(rows)
        return np.stack([self.of(w[k], [r["id"] for r in rows[:k + 1]]) for k in range(len(rows))], axis=1)


def interval(value: float, draws: np.ndarray, level: float = LEVEL) -> dict:
    """{value, low, high, se} from the point and its (paired) draws; nan draws are failed refits, left out."""
    d = np.asarray(draws, dtype=float)
    d = d[~np.isnan(d)]
    if d.size < 2:
        return {"value": float(value), "low": None, "high": None, "se": None}
    lo, hi = quantiles(d, level)  # infinite draws (a loss the reference never reaches) stay infinite
    clean = lambda v: float(v) if np.isfinite(v) else None
    return {"value": float(value), "low": clean(lo), "high": clean(hi), "se": clean(np.std(d[np.isfinite(d)], ddof=1))}


def seed_noise(ev: Evaluations, n_boot: int, groups: list[list]) -> SeedNoise:
    """Seed noise pooled over groups of runs that repeat one setting (rows), the part of their spread that is
    each run's own val-window noise taken off (it is in the window bootstrap already)."""
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        return SeedNoise(0.0, 0)
    tpw = tokens_per_window(groups[0][0])
    parts = [(len(g) - 1, window_variance(resampled_losses(ev.windows(g), tpw, n_boot))) for g in groups]
    window_var = sum(df * v for df, v in parts) / sum(df for df, _ in parts)
    return SeedNoise.pooled([[r.val_loss for r in g] for g in groups], window_var)


def reference_noise(noise: SeedNoise, tokens, losses, fit) -> tuple[SeedNoise, dict | None]:
    """The reference points' noise: the seed noise pooled with the reference law's residuals (its misfit), and
    the lack-of-fit test of those residuals against the seed noise."""
    x, y = np.asarray(tokens, dtype=float), np.asarray(losses, dtype=float)
    df_law = x.size - 3
    if fit is None or not getattr(fit, "estimates", None) or df_law <= 0:
        return noise, None
    e = {k: fit.estimates[k].value for k in ("E", "A", "alpha")}
    sse = float(((y - (e["E"] + e["A"] * x ** -e["alpha"])) ** 2).sum())
    return noise.with_misfit(sse, df_law), lack_of_fit(sse, df_law, noise)
