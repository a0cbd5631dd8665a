"""Seed noise: how far a val loss moves when only the seed changes, carried into every interval.

A bench measures most settings once (one seed), so an interval over resampled val windows alone says how well
the val split pins *that run's* loss down, not how far another seed of the same setting would land. Where the
bench repeats a setting (an ensemble's members: the chosen run and K-1 more seeds of it; several students of one
teacher), the spread of those repeats estimates the seed noise: a pooled standard deviation with
sum(k - 1) degrees of freedom. Every run then gets its own normal draw of that noise per bootstrap draw (a model
made of several runs, an ensemble, takes the mean of its runs' draws, so models sharing a run are correlated as
they are), scaled per draw by sd·sqrt(df / chi2_df): with a handful of repeats the sd itself is uncertain, and
the draws carry that (a Student-t margin in effect).

The reference law's misfit: the reference points (one run per size of data) miss their fitted power law by
residuals that hold seed noise and whatever the law does not describe. `with_misfit` pools the law's residual
sum of squares with the repeats' (the classic pure-error plus lack-of-fit pooling), so reference points that sit
off their law widen every multiple read off it; `lack_of_fit` tests whether they sit off it beyond seed noise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SeedNoise:
    """A pooled seed standard deviation and its degrees of freedom (0: not measured, no seed noise drawn)."""

    sd: float
    """Pooled standard deviation of the repeats' val losses (seed noise plus each run's own val-window noise)."""
    df: int
    groups: int = 0
    """Repeated settings pooled (ensembles, students)."""
    window_var: float = 0.0
    """The part of sd² that is each run's own val-window noise (already in the val-window bootstrap): taken off
    before seed noise is drawn, so it is not counted twice."""

    @classmethod
    def pooled(cls, groups: list[list[float]], window_var: float = 0.0) -> SeedNoise:
        """Pool the val losses of runs that repeat one setting with other seeds (groups of one add nothing);
        `window_var`: see the field (`window_variance` estimates it)."""
        groups = [np.asarray(g, dtype=float) for g in groups if len(g) >= 2]
        df = sum(g.size - 1 for g in groups)
        if not df:
            return cls(0.0, 0, 0, window_var)
        ss = sum(float(((g - g.mean()) ** 2).sum()) for g in groups)
        return cls(float(np.sqrt(ss / df)), df, len(groups), window_var)

    @property
    def seed_sd(self) -> float:
        """The point estimate of the seed noise alone (the window part taken off, at least 0)."""
        return float(np.sqrt(max(0.0, self.sd ** 2 - self.window_var)))

    def with_misfit(self, sse: float, df_law: int) -> SeedNoise:
        """Seed noise pooled with a fitted law's residuals (sum of squares `sse` on `df_law` spare points)."""
        if df_law <= 0:
            return self
        df = self.df + df_law
        return SeedNoise(float(np.sqrt((self.sd ** 2 * self.df + sse) / df)), df, self.groups, self.window_var)

    def sd_draws(self, n: int, seed: int = 0) -> np.ndarray:
        """(n,) seed standard deviations, one per bootstrap draw: sqrt(sd²·df/chi2_df - window_var), at least 0
        (sd² itself is uncertain with few repeats; the window part is the bootstrap's already)."""
        if not self.df or self.sd == 0:
            return np.zeros(n)
        chi2 = np.random.default_rng([seed, 7]).chisquare(self.df, size=n)
        return np.sqrt(np.maximum(0.0, self.sd ** 2 * self.df / chi2 - self.window_var))

    def to_json_dict(self) -> dict:
        return {"sd": self.sd, "seed_sd": self.seed_sd, "df": self.df, "groups": self.groups,
                "window_sd": float(np.sqrt(self.window_var))}


def window_variance(draws: np.ndarray) -> float:
    """The val-window noise of one run's mean loss that is its own (not shared by every model on the same
    windows), from paired draws (n_boot, runs) of runs measured on the same windows: half the bootstrap
    variance of a difference of two runs, averaged over the pairs."""
    draws = np.asarray(draws, dtype=float)
    k = draws.shape[1]
    if k < 2:
        return 0.0
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    return float(np.mean([np.var(draws[:, i] - draws[:, j], ddof=1) / 2 for i, j in pairs]))


def unit_draws(unit: str, n: int, seed: int = 0) -> np.ndarray:
    """(n,) standard normal draws of one run's seed noise, fixed by its id: every model that holds the run sees
    the same draws, so their comparisons stay paired."""
    digest = hashlib.sha256(f"{seed}:{unit}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(n)


def model_noise(units: list[str], sd: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n,) seed-noise draws of a model made of `units` (its runs; an ensemble's members): their mean, per draw
    scaled by `sd` (n,)."""
    if not units:
        return np.zeros_like(sd)
    return sd * np.mean([unit_draws(u, sd.size, seed) for u in units], axis=0)


def lack_of_fit(sse: float, df_law: int, noise: SeedNoise) -> dict | None:
    """F test of a law's residuals against seed noise: {F, p} (None when either has no degrees of freedom)."""
    if df_law <= 0 or not noise.df or noise.sd == 0:
        return None
    f = (sse / df_law) / noise.sd ** 2
    return {"F": float(f), "p": float(stats.f.sf(f, df_law, noise.df)), "df": [df_law, noise.df]}
