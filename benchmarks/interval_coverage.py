"""Coverage of the bench's data-efficiency intervals on synthetic references with a known true multiple.

Each trial draws a bench in miniature: a reference recipe measured once at 1x, 2x, 4x and 8x the budget (one
seed each), a recipe on the budget whose true loss the reference reaches at `multiple` x the budget, and three
more seeds of that recipe (the repeats the bench has in an ensemble's members). Every run's val loss is its true
loss plus its seed's noise, measured on val windows that share a common difficulty and add each run's own noise.
The multiple's interval is computed by the bench's own code path (`scarce.bench.measured`: paired window draws,
seed noise pooled from the repeats, the reference law's misfit pooled in; `fit_efficiency` and
`empirical_efficiency` on those draws) and checked against the true multiple. A scenario may bend the true
reference curve off a power law (`bump`), which the parametric law cannot follow.

    python benchmarks/interval_coverage.py [--trials 1000] [--boot 400]

prints a table of scenarios: coverage of the claimed 95% (parametric and empirical), median widths, and the
coverage of the intervals the bench gave before (val windows only).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from scarce.bench.measured import Measured, reference_noise, seed_noise
from scarce.runs.store import RunRow
from scarce.scaling import empirical_efficiency, fit_efficiency, fit_power_law
from scarce.scaling.laws import power_law
from scarce.scaling.noise import SeedNoise

BUDGET = 100_000
MULTIPLES = np.array([1.0, 2.0, 4.0, 8.0])
SCENARIOS = {
    "power law, seed sd 0.006": {},
    "bent reference (0.02 nats)": {"bump": 0.02},
    "seed sd 0.02": {"sigma": 0.02},
    "no seed noise": {"sigma": 0.0},
    "true multiple 4x": {"multiple": 4.0},
    "true multiple 1.3x": {"multiple": 1.3},
}


TOKENS = 2
"""Tokens per window of the synthetic runs (a config's least seq_len): each window's summed loss is TOKENS times its
per-token loss, so the draws equal those of one-token windows bit for bit (a power of two scales exactly)."""


class WindowEvaluations:
    """Per-window summed losses (TOKENS tokens per window) of the trial's runs, by run id."""

    def __init__(self, windows: dict):
        self.w = windows

    def windows(self, rows) -> np.ndarray:
        return np.stack([self.w[r.id] * TOKENS for r in rows])


def _row(run_id: str, windows: np.ndarray) -> RunRow:
    return RunRow(run_id, "done", "", {"model": {"seq_len": TOKENS}}, {}, val_loss=float(windows.mean()))


def trial(t: int, n_boot: int = 400, sigma: float = 0.006, multiple: float = 2.0, bump: float = 0.0,
          n_windows: int = 400, common: float = 0.5, own: float = 0.08, E: float = 2.5, alpha: float = 0.3,
          seed_noise_on: bool = True) -> dict:
    """One synthetic bench: the true multiple and whether each interval covers it."""
    rng = np.random.default_rng(t)
    A = (4.0 - E) * BUDGET ** alpha
    truth = lambda d: power_law(d, E, A, alpha) + bump * np.sin(2 * np.log2(np.asarray(d) / BUDGET))
    grid = np.geomspace(BUDGET / 10, BUDGET * 1000, 40001)
    target = truth(multiple * BUDGET)
    true_multiple = float(np.interp(-target, -truth(grid), grid)) / BUDGET  # the true curve inverted
    shared = rng.normal(0, common, n_windows)
    losses = list(truth(MULTIPLES * BUDGET)) + [target] * 4
    ids = [f"ref{i}" for i in range(4)] + [f"seed{i}" for i in range(4)]
    windows = {i: v + rng.normal(0, sigma) + shared + rng.normal(0, own, n_windows) for i, v in zip(ids, losses)}
    rows = {i: _row(i, w) for i, w in windows.items()}
    ev = WindowEvaluations(windows)
    refs, seeds = [rows[i] for i in ids[:4]], [rows[i] for i in ids[4:]]
    D, ref_loss = MULTIPLES * BUDGET, [r.val_loss for r in refs]
    m = Measured(ev, n_boot, TOKENS, seed_noise(ev, n_boot, [seeds]) if seed_noise_on else SeedNoise(0.0, 0))
    if seed_noise_on:
        ref_noise, _ = reference_noise(m.noise, D, ref_loss, fit_power_law(D, ref_loss, n_boot=0))
        m.use([r.id for r in refs], ref_noise)
    draws = np.column_stack([m.runs(refs), m.runs(seeds[:1])])
    out = {"true": true_multiple}
    for kind, fn in (("parametric", fit_efficiency), ("empirical", empirical_efficiency)):
        e = fn(D, ref_loss, seeds[0].val_loss, BUDGET, n_boot=n_boot, loss_draws=draws)["efficiency"]
        out[kind] = (e.low <= true_multiple <= e.high, e.high - e.low)
    return out


def coverage(trials: int, n_boot: int = 400, **scenario) -> dict:
    """Coverage and median width of both multiples' intervals over `trials` synthetic benches."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = [trial(t, n_boot, **scenario) for t in range(trials)]
    return {kind: {"coverage": float(np.mean([r[kind][0] for r in runs])),
                   "width": float(np.median([r[kind][1] for r in runs]))} for kind in ("parametric", "empirical")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--boot", type=int, default=400)
    args = ap.parse_args()
    print(f"{args.trials} trials per scenario, {args.boot} draws each; claimed level 95%")
    print("| scenario | parametric coverage | width | empirical coverage | width | before: parametric | empirical |")
    print("|---|---|---|---|---|---|---|")
    for name, kw in SCENARIOS.items():
        now = coverage(args.trials, args.boot, **kw)
        before = coverage(args.trials, args.boot, **kw, seed_noise_on=False)
        print(f"| {name} | {now['parametric']['coverage']:.1%} | {now['parametric']['width']:.3f}x | "
              f"{now['empirical']['coverage']:.1%} | {now['empirical']['width']:.3f}x | "
              f"{before['parametric']['coverage']:.1%} | {before['empirical']['coverage']:.1%} |", flush=True)


if __name__ == "__main__":
    main()
