"""Do `scarce ablate`'s intervals of a paired val difference cover what they claim? Coverage on synthetic runs
with a known difference.

Each trial draws a val split (windows of shared difficulty, as real text has), S seeds of a base and a variant
(each run: the windows plus its own window noise plus a seed effect of sd `seed_sd` per run), and asks whether the
95% interval of `Draws.difference` holds the true expected difference. The truth averages over seeds and over val
text, so an interval that left out either would cover less than 95%.

    python benchmarks/ablate_coverage.py [--trials 300] [--boot 400]
"""

from __future__ import annotations

import argparse

import numpy as np

from scarce.recipes.ablate import Draws

TRUE = -0.02
"""The change's expected gain in nats per token."""


def trial(rng, seeds: int, seed_sd: float, n_boot: int, windows: int = 300, tpw: int = 32) -> tuple[bool, float]:
    hard = rng.gamma(4, 1, windows) * tpw * 0.75  # each window's difficulty, shared by every run
    run = lambda shift: hard + rng.normal(0, 3, windows) + (shift + rng.normal(0, seed_sd)) * tpw
    w = {"base": np.stack([run(0.0) for _ in range(seeds)]), "variant": np.stack([run(TRUE) for _ in range(seeds)])}
    d = Draws(w, {k: x.sum(1) / (windows * tpw) for k, x in w.items()}, tpw, n_boot)
    _, draws, _ = d.difference("base", "variant")
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return bool(lo <= TRUE <= hi), float(hi - lo)


def coverage(seeds: int, seed_sd: float, trials: int, n_boot: int, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng([seed, seeds, int(seed_sd * 1e4)])
    results = [trial(rng, seeds, seed_sd, n_boot) for _ in range(trials)]
    return float(np.mean([r[0] for r in results])), float(np.mean([r[1] for r in results]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=300)
    p.add_argument("--boot", type=int, default=400)
    args = p.parse_args()
    print(f"{args.trials} trials per row, {args.boot} draws each; true difference {TRUE} nats/token\n")
    print("| seeds | seed sd (nats) | coverage of the 95% interval | mean width (nats) |\n|---:|---:|---:|---:|")
    for seeds in (2, 3, 5):
        for sd in (0.0, 0.01, 0.03):
            cov, width = coverage(seeds, sd, args.trials, args.boot)
            print(f"| {seeds} | {sd} | {cov:.1%} | {width:.4f} |")


if __name__ == "__main__":
    main()
