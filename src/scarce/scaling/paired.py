"""Paired comparisons of models on the same held-out windows, with moving-block bootstrap intervals.

Two models (or ensembles) evaluated on the same windows of a split differ far less from window to window
than their losses do, so the difference of their mean losses is known much better than either loss.
Neighbouring windows come from the same document and are correlated; resampling blocks of consecutive
windows (rather than single windows) keeps that correlation in the interval.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEVEL = 0.95
BLOCK = 8
"""Windows per resampled block (8 windows of 128 tokens: about one held-out document window)."""


def block_bootstrap(stat: Callable[..., float], arrays: list[np.ndarray], n_boot: int = 1000, seed: int = 0,
                    block: int = BLOCK, level: float = LEVEL) -> dict:
    """`stat(*arrays)` on the data and on `n_boot` moving-block resamples of the windows (the last axis of
    every array). Returns {value, low, high, se}; the interval is the percentile interval."""
    n = arrays[0].shape[-1]
    value = float(stat(*arrays))
    if n_boot <= 0 or n < 2:
        return {"value": value, "low": None, "high": None, "se": None}
    draws = np.array([stat(*(a[..., i] for a in arrays)) for i in block_indices(n, n_boot, seed, block)])
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return {"value": value, "low": None, "high": None, "se": None}
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return {"value": value, "low": float(low), "high": float(high), "se": float(draws.std(ddof=1))}


def resampled_losses(windows: np.ndarray, tokens_per_window: int, n_boot: int = 1000, seed: int = 0,
                     block: int = BLOCK) -> np.ndarray:
    """(n_boot, runs): each run's mean loss on the same moving-block resamples of the windows (windows:
    (runs, n) summed NLLs), so fits through these losses carry their measurement noise, paired."""
    n = windows.shape[-1]
    return windows[:, block_indices(n, n_boot, seed, block)].sum(-1).T / (n * tokens_per_window)


def block_indices(n: int, n_boot: int, seed: int, block: int = BLOCK) -> np.ndarray:
    """(n_boot, n) window indices: each row n windows drawn as random blocks of `block` consecutive ones."""
    block = max(1, min(block, n))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(n_boot, -(-n // block)))
    return (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :n]


def loss_difference(a: np.ndarray, b: np.ndarray, tokens_per_window: int, **kw) -> dict:
    """Mean loss of `a` minus mean loss of `b` (nats/token), from their per-window summed NLLs."""
    return block_bootstrap(lambda x, y: (x.sum() - y.sum()) / (x.size * tokens_per_window), [a, b], **kw)


def gain_share(base: np.ndarray, target: np.ndarray, candidate: np.ndarray, **kw) -> dict:
    """How much of the gain from `base` to `target` `candidate` keeps: (L_base - L_cand) / (L_base - L_target)
    (a student keeping 83% of its ensemble's gain: 0.83)."""
    def share(b, t, c):
        gain = b.sum() - t.sum()
        return (b.sum() - c.sum()) / gain if gain else np.nan
    return block_bootstrap(share, [base, target, candidate], **kw)
