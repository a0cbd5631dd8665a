"""One number from several samples of the data: the same pipeline run on other documents of the corpus.

A bench result (a data-efficiency multiple, a loss gap) measured on S samples varies for two reasons: within a
sample (which val windows, the fit; what each sample's bootstrap interval covers) and between samples (which
documents were drawn). The combined interval has to cover both, and with the few samples a bench can afford
(S = 3 to 5) a bootstrap over samples cannot: resampling 3 values with replacement sees a spread (S-1)/S of theirs
and its percentile interval ignores that the spread itself is estimated from 3 values. Measured on synthetic
samples (tests/scaling/test_samples.py): the two-level bootstrap (samples, then each sample's own bootstrap draws)
covers the truth in 76-78% of trials at S = 3 and 85-87% at S = 5 (between-sample sd 0.15 in log units) where
it claims 95%.

`combine_samples` therefore treats the samples as a random-effects meta-analysis on the log scale, the standard
for few studies with known within-study variances: the between-sample variance tau^2 by DerSimonian-Laird, the
mean weighted by 1 / (s_i^2 + tau^2), and the Hartung-Knapp-Sidik-Jonkman interval (a t quantile with S-1
degrees of freedom, with the variance factor floored at 1, Roever et al. 2015), which holds its level down to
S = 3 in the same test. It also gives the prediction interval for one new sample (Higgins et al. 2009: what a
rerun on other documents would read), which is the wider, honest answer to "would this survive a rerun".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from scarce.errors import UserError
from scarce.scaling.laws import LEVEL


@dataclass
class Combined:
    """A quantity combined over samples; multiples are combined as logs and reported back as multiples."""

    value: float
    """The random-effects mean (a geometric mean of the samples' values, weighted, on the log scale)."""
    low: float
    high: float
    """The interval of that mean at `level` (Hartung-Knapp-Sidik-Jonkman)."""
    prediction_low: float
    prediction_high: float
    """Where the value one new sample reads falls at `level` (its own between-sample draw and within-sample
    noise; nan with fewer than 3 samples)."""
    tau: float
    """The between-sample standard deviation (log scale with `log`: exp(tau) is a multiplicative spread)."""
    samples: int
    level: float = LEVEL
    values: list[float] = field(default_factory=list)
    within_sd: list[float] = field(default_factory=list)
    """Each sample's own standard deviation (of its bootstrap draws, log scale with `log`)."""
    method: str = "random effects (DerSimonian-Laird tau^2), Hartung-Knapp-Sidik-Jonkman interval"

    def to_json_dict(self) -> dict:
        clean = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
        return {"value": clean(self.value), "low": clean(self.low), "high": clean(self.high),
                "prediction_low": clean(self.prediction_low), "prediction_high": clean(self.prediction_high),
                "tau": clean(self.tau), "samples": self.samples, "level": self.level,
                "values": [clean(v) for v in self.values], "within_sd": [clean(s) for s in self.within_sd],
                "method": self.method}


def within_sd_of_interval(low: float, high: float, level: float = LEVEL, log: bool = True) -> float:
    """A sample's own sd read back from its (percentile) interval, as if normal (log-normal with `log`): for
    results that keep their interval but not their draws (bench.json)."""
    z = stats.norm.ppf((1 + level) / 2)
    lo, hi = (np.log(low), np.log(high)) if log else (low, high)
    return float((hi - lo) / (2 * z))


def _inputs(values, draws, log: bool) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(values, dtype=float)
    if y.ndim != 1 or y.size < 2:
        raise UserError(f"combining samples needs the values of 2 samples or more, got {y.size}")
    if not np.all(np.isfinite(y)) or (log and np.any(y <= 0)):
        raise UserError("every sample's value must be a finite number" + (" > 0 (multiples are combined as logs)"
                                                                           if log else ""))
    if draws is None:
        s2 = np.zeros_like(y)
    else:
        if len(draws) != y.size:
            raise UserError(f"{len(draws)} sets of draws for {y.size} samples")
        s2 = np.empty_like(y)
        for i, d in enumerate(draws):
            d = np.asarray(d, dtype=float)
            d = d[np.isfinite(d) & (d > 0)] if log else d[np.isfinite(d)]
            if d.size < 2:
                raise UserError(f"sample {i} has fewer than 2 usable bootstrap draws")
            s2[i] = np.var(np.log(d) if log else d, ddof=1)
    return (np.log(y) if log else y), s2


def combine_samples(values, draws=None, *, within_sd=None, level: float = LEVEL, log: bool = True) -> Combined:
    """Combine one quantity measured on S >= 2 samples: `values` the samples' point estimates, `draws` (one array
    per sample, optional) their within-sample bootstrap draws, whose variance weights them, or `within_sd` those
    sds directly (log scale with `log`). `log`: combine on the log scale (multiples, ratios) and report back on
    the original one."""
    y, s2 = _inputs(values, draws, log)
    if within_sd is not None:
        sd = np.asarray(within_sd, dtype=float)
        if sd.shape != y.shape or not np.all(np.isfinite(sd) & (sd >= 0)):
            raise UserError(f"within_sd must be {y.size} finite numbers >= 0")
        s2 = sd ** 2
    k = y.size
    if np.all(s2 == 0):  # no within-sample noise known: the samples' own spread is all there is (a t interval)
        mu, tau2 = float(np.mean(y)), float(np.var(y, ddof=1))
        se = np.sqrt(tau2 / k)
    else:
        w = 1.0 / np.maximum(s2, 1e-12)
        mean_w = np.sum(w * y) / np.sum(w)
        q = np.sum(w * (y - mean_w) ** 2)
        tau2 = max(0.0, (q - (k - 1)) / (np.sum(w) - np.sum(w ** 2) / np.sum(w)))
        w_star = 1.0 / (s2 + tau2)
        mu = np.sum(w_star * y) / np.sum(w_star)
        factor = max(1.0, np.sum(w_star * (y - mu) ** 2) / (k - 1))
        se = np.sqrt(factor / np.sum(w_star))
    half = stats.t.ppf((1 + level) / 2, k - 1) * se
    if k >= 3:
        # a rerun's reading: its own true value (tau^2) seen through its own within-sample noise (a typical s^2)
        spread = stats.t.ppf((1 + level) / 2, k - 2) * np.sqrt(tau2 + se ** 2 + np.mean(s2))
        pred = (mu - spread, mu + spread)
    else:
        pred = (np.nan, np.nan)
    back = np.exp if log else (lambda v: v)
    return Combined(float(back(mu)), float(back(mu - half)), float(back(mu + half)), float(back(pred[0])),
                    float(back(pred[1])), float(np.sqrt(tau2)), k, level, [float(v) for v in np.asarray(values)],
                    [float(np.sqrt(v)) for v in s2])


def two_level_bootstrap(values, draws, *, n_boot: int = 2000, seed: int = 0, level: float = LEVEL,
                        log: bool = True) -> tuple[float, float]:
    """The percentile interval of the mean over samples from a two-level bootstrap: samples drawn with
    replacement, then one of each drawn sample's own bootstrap draws. Kept to compare with `combine_samples`:
    at S = 3 to 5 it undercovers (module docstring)."""
    y, _ = _inputs(values, draws, log)
    rng = np.random.default_rng(seed)
    pools = [np.log(np.asarray(d, float)) if log else np.asarray(d, float) for d in draws]
    pools = [p[np.isfinite(p)] for p in pools]
    picks = rng.integers(0, y.size, size=(n_boot, y.size))
    means = np.array([np.mean([rng.choice(pools[i]) for i in row]) for row in picks])
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return (float(np.exp(lo)), float(np.exp(hi))) if log else (float(lo), float(hi))
