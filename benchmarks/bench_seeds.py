"""Seed spread of a bench's single-model recipes, and what it does to their data efficiency.

    python benchmarks/bench_seeds.py BENCH_OUT [--seeds 3] [--results RES] [--workers 2]

A bench trains the standard recipe's budget point (the reference at 1x) and the regularized choice once
each; its ensemble members are the regularized choice under other seeds. This script trains the standard
point again with `--seeds` more seeds (train.seed 1..S: other initialisation, data order and dropout), then
prints, for both recipes, each seed's val loss and its parametric data efficiency against the bench's own
reference law (the reference runs of bench.json), with the mean and the spread over seeds. The runs go into
the bench's run store and run folders, so a second call trains nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scarce.config import RunConfig
from scarce.recipes.common import Context, run_points
from scarce.rundir import read_config
from scarce.runs.executors import Execution
from scarce.scaling import fit_efficiency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_out")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--results", help="the bench's results root (default: the one bench.json names)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.bench_out)
    bench = json.loads((out / "bench.json").read_text())
    ref = bench["reference"]
    standard = read_config(next((out / "runs").glob(f"bench-standard/{ref[0]['run_id']}")))
    point = _point(standard)
    ctx = Context(data=standard.data, out=str(out / "runs"), sizes=[1], preset=standard.preset,
                  overrides={}, execution=Execution(results=args.results or bench["results"]).held(args.workers, threads=1),
                  log=print)
    rows = run_points(ctx, "bench-seeds", [{**point, "train.seed": s} for s in range(1, args.seeds + 1)])
    ref_tokens, ref_loss = [r["train_tokens"] for r in ref], [r["val_loss"] for r in ref]
    budget = ref[0]["train_tokens"]
    losses = {"standard": [ref[0]["val_loss"]] + [r["val_loss"] for r in rows],
              "regularized": bench["ensemble"]["member_val_loss"] if bench.get("ensemble") else []}
    print("\n| recipe | seeds | val loss per seed | mean +- sd | efficiency per seed | mean +- sd |")
    print("|---|---|---|---|---|---|")
    for name, values in losses.items():
        if not values:
            continue
        eff = [fit_efficiency(ref_tokens, ref_loss, v, budget, n_boot=0).estimates["efficiency"].value for v in values]
        print(f"| {name} | {len(values)} | {', '.join(f'{v:.4f}' for v in values)} | {_ms(values, 4)} | "
              f"{', '.join(f'{e:.2f}x' for e in eff)} | {_ms(eff, 2)}x |")


def _point(cfg: RunConfig) -> dict:
    """The overrides that make the bench's standard run at 1x (everything but its seed)."""
    return {"data": cfg.data, "model.depth": cfg.model.depth, "optim.lr": cfg.optim.lr,
            "optim.weight_decay": cfg.optim.weight_decay, "model.dropout": cfg.model.dropout,
            "train.epochs": cfg.train.epochs, "init.source": cfg.init.source, "tags.stage": "standard-seeds",
            **{f"model.{k}": getattr(cfg.model, k) for k in ("aspect_ratio", "head_dim", "seq_len")},
            "train.batch_size": cfg.train.batch_size, "train.eval_every": cfg.train.eval_every,
            "train.threads": 1}


def _ms(values: list[float], digits: int) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} +- {sd:.{digits}f}"


if __name__ == "__main__":
    main()
