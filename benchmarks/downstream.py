"""Downstream accuracy of a bench's recipes over several seeds: the embedded task `scarce_nextline` on the
standard recipe (the 1x reference run and `--seeds - 1` more seeds of its config, trained here), the
regularized recipe (the default ensemble's members: one seed each) and the ensemble; prints a markdown table
with each recipe's mean accuracy, the spread over seeds and a 95% percentile interval over items.

    python benchmarks/downstream.py --bench OUT --results RES --seeds 3 --workers 2

OUT and RES are a finished `scarce bench` call's folder and results root (the runs it needs are read from
OUT/bench.json; the extra standard seeds go to OUT/runs/downstream-seeds and the run store).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from scarce.data.store import open_store
from scarce.eval import nextline
from scarce.eval.scoring import Scorer
from scarce.rundir import Member, read_config
from scarce.runs.executors import make_executor
from scarce.runs.launch import Job, run_jobs
from scarce.runs.store import RunStore


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--items", type=int, default=nextline.MAX_ITEMS)
    a = p.parse_args()
    out = Path(a.bench)
    bench = json.loads((out / "bench.json").read_text())
    store = RunStore(a.results)
    dirs = {r["id"]: r["run_dir"] for r in store.list()}
    reference = dirs[bench["reference"][0]["run_id"]]
    members = [dirs[i] for i in bench["ensemble"]["member_ids"]]
    jobs = []
    for seed in range(1, a.seeds):
        cfg = read_config(reference)
        cfg.train.seed = seed
        jobs.append(Job(cfg, out / "runs" / "downstream-seeds" / f"seed{seed}"))
    if jobs:
        run_jobs(jobs, make_executor("local", a.workers, threads=1), a.results, True)
    standard = [reference] + [str(j.run_dir) for j in jobs]
    items = nextline.items(open_store(read_config(reference).data), a.items)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(items), size=(1000, len(items)))

    def correct(runs: list[str]) -> np.ndarray:
        return nextline.correct(Scorer([Member.of_run(r) for r in runs], "logit"), items)

    rows = []
    for name, runs in (("standard", standard), ("regularized", members)):
        per_seed = [correct([r]) for r in runs]
        accs = [float(c.mean()) for c in per_seed]
        pooled = np.mean(per_seed, axis=0)
        draws = pooled[picks].mean(axis=1)
        losses = [json.loads((Path(r) / "summary.json").read_text())["val_loss"] for r in runs]
        rows.append((name, len(runs), statistics.mean(losses), statistics.pstdev(losses), statistics.mean(accs),
                     statistics.pstdev(accs), *np.quantile(draws, [0.025, 0.975])))
    ens = correct(members)
    draws = ens[picks].mean(axis=1)
    rows.append((f"ensemble-k{len(members)}", 1, bench["ensemble"]["prefix_val_loss"][-1], 0.0, float(ens.mean()), 0.0,
                 *np.quantile(draws, [0.025, 0.975])))
    print(f"{nextline.TASK}: {len(items)} items, random {nextline.RANDOM_BASELINE}")
    print("| recipe | seeds | val loss (mean, sd) | accuracy (mean, sd over seeds) | 95% interval over items |")
    print("|---|---:|---|---|---|")
    for name, n, lm, ls, am, asd, lo, hi in rows:
        print(f"| {name} | {n} | {lm:.4f} ({ls:.4f}) | {am:.3f} ({asd:.3f}) | [{lo:.3f}, {hi:.3f}] |")
    c = (bench.get("downstream") or {}).get("correlation")
    if c:
        print(f"\nrho(val loss, accuracy) over the bench's {c['runs']} runs: {c['rho']:.2f} "
              f"[{c['low']:.2f}, {c['high']:.2f}]")


if __name__ == "__main__":
    main()
