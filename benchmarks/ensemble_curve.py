"""K-scaling curves of ensembles under fixed data, at tiny scale on the embedded (stdlib) corpus:
K = 1..K independent members, K chain-distilled members, and the K-member ensemble distilled into
one student; the whole procedure repeated with different base seeds.

    python benchmarks/ensemble_curve.py [--members 8] [--reps 2] [--steps 200] [--workers 1]
        [--work /tmp/scarce-ensemble-bench] [--out benchmarks/results/ensemble_curve_cpu]

Every member's val loss and every prefix's val loss are listed (OUT.json with everything, OUT.md a
table). All processes use 1 torch thread; --workers trains independent members in parallel processes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from scarce.atomic import write_json, write_text
from scarce.config import apply_overrides, get_preset
from scarce.data.prepare import prepare
from scarce.recipes.distill import distill_student
from scarce.recipes.ensemble import ensemble
from scarce.runs.executors import make_executor

MODEL = ["model.depth=2", "model.aspect_ratio=32", "model.head_dim=32", "model.seq_len=64",
         "train.batch_size=16", "train.threads=1", "train.log_every=1000", "train.eval_every=50"]


def base_config(store_path: Path, steps: int, seed: int):
    tokens = steps * 16 * 64
    cfg = apply_overrides(get_preset("tiny"), MODEL + [f"train.tokens={tokens}", f"train.seed={seed}"])
    cfg.data = str(store_path)
    return cfg


def one_rep(store: Path, work: Path, rep: int, args) -> dict:
    seed = 1000 * rep
    base = base_config(store, args.steps, seed)
    t0 = time.perf_counter()
    out = work / f"rep{rep}" / "independent"
    executor = make_executor("local", args.workers, threads=1)
    indep = ensemble(base, args.members, out, executor=executor, results=str(work / "results"), quiet=True)
    indep["student"] = distill_student(base, [Path(m["run_dir"]) for m in indep["members"]], out, alpha=args.alpha,
                                       temperature=args.temperature, results=str(work / "results"), quiet=True)
    t1 = time.perf_counter()
    chain = ensemble(base_config(store, args.steps, seed), args.members, work / f"rep{rep}" / "chain",
                     chain_distill=True, alpha=args.alpha, temperature=args.temperature,
                     results=str(work / "results"), quiet=True)
    t2 = time.perf_counter()
    return {"seed": seed, "independent": indep, "chain": chain,
            "seconds": {"independent_and_student": t1 - t0, "chain": t2 - t1}}


def markdown(result: dict) -> str:
    reps, K = result["reps"], result["args"]["members"]
    lines = [f"# Ensemble K-scaling at tiny scale ({result['date']})", "",
             f"Machine: {result['machine']}; 1 torch thread per process; {result['args']['workers']} worker(s).",
             f"Data: stdlib corpus, fixed store {result['store']}.",
             f"Members: {result['model']}; {result['args']['steps']} steps each; chain and student distillation "
             f"alpha {result['args']['alpha']}, T {result['args']['temperature']}; logit averaging.", "",
             "## Val loss (nats/token) of the ensemble of the first k members", "",
             "| k | " + " | ".join(f"indep rep{r['rep']}" for r in reps) + " | " +
             " | ".join(f"chain rep{r['rep']}" for r in reps) + " | indep mean | chain mean |",
             "|---" * (3 + 2 * len(reps)) + "|"]
    for k in range(K):
        ind = [r["independent"]["prefix_val_loss"][k] for r in reps]
        ch = [r["chain"]["prefix_val_loss"][k] for r in reps]
        lines.append(f"| {k + 1} | " + " | ".join(f"{x:.4f}" for x in ind + ch) +
                     f" | {statistics.mean(ind):.4f} | {statistics.mean(ch):.4f} |")
    lines += ["", "## Val loss of each member alone", "",
              "| member | " + " | ".join(f"indep rep{r['rep']}" for r in reps) + " | " +
              " | ".join(f"chain rep{r['rep']}" for r in reps) + " |", "|---" * (1 + 2 * len(reps)) + "|"]
    for k in range(K):
        vals = [r["independent"]["members"][k]["val_loss"] for r in reps] + \
               [r["chain"]["members"][k]["val_loss"] for r in reps]
        lines.append(f"| {k} | " + " | ".join(f"{x:.4f}" for x in vals) + " |")
    lines += ["", "## Ensemble of the K independent members distilled into one student", "",
              "| rep | best single member | K-ensemble | student | student bpb |", "|---|---|---|---|---|"]
    for r in reps:
        ind = r["independent"]
        lines.append(f"| {r['rep']} | {min(m['val_loss'] for m in ind['members']):.4f} | "
                     f"{ind['prefix_val_loss'][-1]:.4f} | {ind['student']['val_loss']:.4f} | "
                     f"{ind['student']['val_bpb']:.4f} |")
    lines += ["", f"Wall time: {result['seconds']:.0f} s. Full numbers (bpb too): the .json beside this file.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=8, help="K (default 8)")
    p.add_argument("--reps", type=int, default=2, help="repetitions of the whole procedure (default 2)")
    p.add_argument("--steps", type=int, default=200, help="training steps per member (default 200)")
    p.add_argument("--alpha", type=float, default=0.5, help="distillation weight (default 0.5)")
    p.add_argument("--temperature", type=float, default=2.0, help="distillation temperature (default 2)")
    p.add_argument("--workers", type=int, default=1, help="parallel 1-thread processes for independent members")
    p.add_argument("--work", default="/tmp/scarce-ensemble-bench", help="folder for the store and the runs")
    p.add_argument("--out", default="benchmarks/results/ensemble_curve_cpu", help="results path without suffix")
    args = p.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    store = prepare("stdlib", work / "store", vocab_size=512, train_tokens=200_000, select_tokens=20_000,
                    val_tokens=20_000, tokenizer_bytes=2_000_000, threads=1, log=lambda *a: None)
    t0 = time.perf_counter()
    reps = [{"rep": r, **one_rep(store.path, work, r, args)} for r in range(args.reps)]
    model = " ".join(MODEL[:4]).replace("model.", "")
    result = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()} {os.cpu_count()} cores",
              "store": store.fingerprint, "model": model, "args": vars(args), "reps": reps,
              "seconds": time.perf_counter() - t0}
    write_json(Path(args.out + ".json"), result)
    write_text(Path(args.out + ".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
