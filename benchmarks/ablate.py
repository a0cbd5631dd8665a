"""Ablation of the data-efficiency knobs at tiny scale on fixed data: the baseline, each knob added
alone, and the full `slowrun` stack (without and with looping), over several seeds.

    python benchmarks/ablate.py [--train-tokens 1000000] [--epochs 2] [--seeds 3] [--workers 2]
        [--knobs baseline swiglu ...] [--set model.width=128 ...]
        [--work /tmp/scarce-ablate] [--out benchmarks/results/ablate_cpu]

Data: the embedded stdlib corpus, one token store (vocabulary 1024, --train-tokens train tokens,
50k select, 50k val) shared by every run, trained for --epochs passes. Model: depth 4, width 64,
2 heads of 32, T 128, batch 16, the `tiny` preset's AdamW (lr 3e-3, cosine); a knob changes only
its own fields (docs/architecture.md), so seed s of every config sees the same data order and the
deltas are paired. The val loss reported is the trainer's: the val loss of the checkpoint chosen
on the select split (after the EMA blend where there is an EMA). Time per training token is the
mean over steps of the step time per token (evaluation excluded), read from metrics.jsonl.

Each run is a 1-thread process (--workers of them in parallel). A run whose directory holds a
summary.json is read back, not trained; one that was killed is resumed from its last checkpoint,
so a killed benchmark continues where it stopped. Run directories are named by the config hash,
so changing any setting starts new runs. OUT.md and OUT.json are rewritten after every finished run.

Cost (one thread per run, measured on the 2-core CPU under load, 2026-11-23): the baseline trains
at ~70-100 us/token (10-14k tokens/s); most single knobs cost 0.9-1.4x that, the slowrun stack ~2.1x
without looping (~1.5x since the dropout and softcap speed-ups: knob_cost_cpu.md) and more with it. With the defaults (2M training tokens per run, 22 configs x 3
seeds = 66 runs) a baseline run takes ~3 min and the whole ablation ~4 CPU-hours: ~2 hours on 2
workers (longer if other work shares the cores). --train-tokens 250000 (~40 s per baseline run) takes
~30 min on 2 workers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from scarce.atomic import write_json, write_text
from scarce.config import RunConfig, apply_overrides, get_preset, with_slowrun_stack
from scarce.data.store import prepare

VOCAB, HELDOUT_TOKENS = 1024, 50_000
BASE = ["model.depth=4", "model.width=64", "model.head_dim=32", "model.seq_len=128", "train.batch_size=16",
        "train.threads=1", "train.device=cpu", "train.log_every=1"]
"""The tiny shape: ~15k tokens/s on one CPU thread. log_every=1 times every step (evaluation left out)."""

KNOBS: dict[str, list[str]] = {
    "baseline": [],
    "swiglu": ["model.mlp=swiglu"],
    "value_embed": ["model.value_embed=alt"],
    "unet_skips": ["model.unet_skips=true"],
    "resid_lambdas": ["model.resid_lambdas=true"],
    "attn_gate": ["model.attn_gate=true"],
    "xsa": ["model.xsa=true"],
    "partial_rotary": ["model.rotary_frac=0.5"],
    "key_offset": ["model.key_offset=alt"],
    "qk_norm": ["model.qk_norm=true"],
    "softcap": ["model.softcap=15"],
    "windows": ["model.window_pattern=SSSL"],
    "dropout": ["model.dropout=0.1"],
    "looping": ["model.loop_layers=auto", "model.loop_extra=2", "model.loop_from=0.5"],
    "mtp": ["model.mtp_weight=0.3"],
    "muon": ["optim.optimizer=muon"],
    "cautious_wd": ["optim.cautious_wd=true"],
    "weight_decay": ["optim.weight_decay=1.3"],
    "wd_schedule": ["optim.wd_schedule=lr"],
    "ema": ["optim.ema_decay=0.99", "optim.ema_start=0.5"],
    "lastk": ["optim.avg_last=5", "optim.avg_every=10"],
    "slowrun_noloop": ["model.loop_layers="],  # applied on top of with_slowrun_stack
    "slowrun": [],
}
STACKS = {"slowrun_noloop", "slowrun"}


def make_config(knob: str, store: str, epochs: float, seed: int, eval_every: int, extra: list[str]) -> RunConfig:
    base = apply_overrides(get_preset("tiny"), BASE + extra + [
        f"train.epochs={epochs}", f"train.seed={seed}", f"train.eval_every={eval_every}"])
    if knob in STACKS:
        base = with_slowrun_stack(base)
    cfg = apply_overrides(base, KNOBS[knob])
    cfg.data, cfg.tags = store, {"bench": "ablate", "knob": knob}
    return cfg


def seconds_per_token(run_dir: Path) -> float:
    """Mean over training steps of the step's wall time per token (metrics.jsonl, one record per step)."""
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    inv = [1.0 / r["tok_s"] for r in steps if r["type"] == "train"]
    assert inv, f"no train records in {run_dir}"
    return statistics.mean(inv)


def ema_blend(run_dir: Path) -> float | None:
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    return evals[-1].get("ema_blend") if evals else None


def run_one(task: dict) -> dict:
    """Train (or resume, or read back) one run in this 1-thread worker; never raises."""
    import torch

    from scarce.runs.launch import run

    torch.set_num_threads(1)
    run_dir, cfg = Path(task["run_dir"]), RunConfig.from_dict(task["config"])
    record = {"knob": task["knob"], "seed": task["seed"], "run_dir": str(run_dir)}
    try:
        summary = run(cfg, run_dir, results=task["results"], quiet=True)  # train, resume or read back
    except Exception as e:
        return record | {"status": "failed", "error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"}
    keep = ("val_loss", "val_bpb", "final_val_loss", "select_loss", "best_step", "params", "non_embedding_params",
            "steps", "epochs", "tokens_seen", "flops", "wall_seconds")
    return record | {k: summary[k] for k in keep} | {
        "status": "done", "us_per_token": 1e6 * seconds_per_token(run_dir),
        "ema_blend": ema_blend(run_dir)}


# ---------------------------------------------------------------------------------------------
# Table


def mean_std(xs: list[float]) -> str:
    """'mean ± std' (std over seeds; '-' with one seed)."""
    std = f"{statistics.stdev(xs):.4f}" if len(xs) > 1 else "-"
    return f"{statistics.mean(xs):+.4f} ± {std}"


def table(runs: list[dict], knobs: list[str]) -> str:
    done = [r for r in runs if r["status"] == "done"]
    by = {k: {r["seed"]: r for r in done if r["knob"] == k} for k in knobs}
    base = by.get("baseline", {})
    base_us = statistics.mean(r["us_per_token"] for r in base.values()) if base else math.nan
    lines = ["| config | seeds | val loss (mean ± std) | Δ vs baseline (paired, ± std) | µs/token | × baseline time |",
             "|---|---:|---:|---:|---:|---:|"]
    for k in knobs:
        rs = by[k]
        if not rs:
            lines.append(f"| {k} | 0 | | | | |")
            continue
        loss = mean_std([r["val_loss"] for r in rs.values()]).lstrip("+")
        paired = [rs[i]["val_loss"] - base[i]["val_loss"] for i in rs if i in base]
        delta = "" if k == "baseline" or not paired else mean_std(paired)
        us = statistics.mean(r["us_per_token"] for r in rs.values())
        lines.append(f"| {k} | {len(rs)} | {loss} | {delta} | {us:.1f} | {us / base_us:.2f} |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    a, env = result["args"], result["environment"]
    failed = [r for r in result["runs"] if r["status"] != "done"]
    out = [f"# Knob ablation at tiny scale on fixed data ({env['date']})", "",
           f"Command: `{result['command']}`", "",
           f"Environment: {env['machine']}, Python {env['python']}, torch {env['torch']}, commit {env['commit']}; "
           f"1 torch thread per run, {a['workers']} worker(s); load average {env['load_start']} at start, "
           f"{env['load_end']} at the last write.", "",
           f"Data: stdlib corpus, token store {result['store']} (vocabulary {VOCAB}, {result['train_tokens']:,} "
           f"train tokens, {HELDOUT_TOKENS:,} select, {HELDOUT_TOKENS:,} val); {a['epochs']} epochs per run.",
           f"Model: {' '.join(BASE[:5])}{' ' + ' '.join(a['set']) if a['set'] else ''}; preset tiny otherwise. "
           "Val loss in nats/token of the checkpoint chosen on select; Δ is the mean over seeds of "
           "(knob − baseline) at the same seed; time per token excludes evaluation.", "",
           table(result["runs"], a["knobs"]), ""]
    if failed:
        out += ["Failed runs:", ""] + [f"- {r['knob']} seed {r['seed']}: {r['error'].splitlines()[0]}" for r in failed]
    out += ["", "Every run's numbers: the .json beside this file.", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def environment() -> dict:
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"date": datetime.date.today().isoformat(), "python": platform.python_version(), "torch": torch.__version__,
            "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".replace("  ", " "),
            "commit": commit, "load_start": load()}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-tokens", type=int, default=1_000_000, help="tokens of the train split (default 1M)")
    p.add_argument("--epochs", type=float, default=2.0, help="passes over the train split per run (default 2)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per config (default 3)")
    p.add_argument("--knobs", nargs="+", choices=list(KNOBS), default=list(KNOBS), help="configs to run (default all)")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="extra overrides for every config")
    p.add_argument("--evals", type=int, default=4, help="evaluations per run (select and val; default 4)")
    p.add_argument("--workers", type=int, default=2, help="parallel 1-thread processes (default 2)")
    p.add_argument("--work", default="/tmp/scarce-ablate", help="folder for the token store and the runs")
    p.add_argument("--out", default="benchmarks/results/ablate_cpu", help="results path without suffix")
    args = p.parse_args()
    knobs = list(dict.fromkeys(args.knobs))
    if "baseline" not in knobs:
        knobs.insert(0, "baseline")  # every delta needs it
    args.knobs = knobs
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers
    import torch

    torch.set_num_threads(1)
    work = Path(args.work)
    store = prepare("stdlib", work / f"store-{args.train_tokens}-v{VOCAB}", vocab_size=VOCAB,
                    train_tokens=args.train_tokens, select_tokens=HELDOUT_TOKENS, val_tokens=HELDOUT_TOKENS,
                    tokenizer_bytes=2_000_000, threads=1, log=lambda *a: None)
    steps = args.epochs * len(store.split("train")) / (16 * 128)  # approximate, for the eval interval only
    eval_every = max(1, round(steps / args.evals))
    tasks = []
    for seed in range(args.seeds):  # seed-major: a partial result covers every config
        for knob in knobs:
            cfg = make_config(knob, str(store.path.resolve()), args.epochs, seed, eval_every, args.set)
            run_dir = work / "runs" / f"{knob}-s{seed}-{cfg.run_id(store.fingerprint)}"
            tasks.append({"knob": knob, "seed": seed, "run_dir": str(run_dir), "config": cfg.to_dict(),
                          "results": str(work / "results")})
    result = {"command": " ".join(["python"] + sys.argv), "args": vars(args), "environment": environment(),
              "store": store.fingerprint, "train_tokens": len(store.split("train")), "runs": []}
    print(f"{len(tasks)} runs ({len(knobs)} configs x {args.seeds} seeds) on {args.workers} worker(s); "
          f"runs in {work / 'runs'}", flush=True)
    t0 = time.perf_counter()
    pool = ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(run_one, t) for t in tasks]
        for n, future in enumerate(as_completed(futures), 1):
            r = future.result()
            result["runs"].append(r)
            result["environment"]["load_end"] = load()
            result["seconds"] = time.perf_counter() - t0
            status = f"val {r['val_loss']:.4f}, {r['us_per_token']:.1f} us/token" if r["status"] == "done" \
                else "FAILED: " + r["error"].splitlines()[0]
            print(f"[{n}/{len(tasks)}] {r['knob']} seed {r['seed']}: {status} ({result['seconds']:.0f} s)", flush=True)
            result["runs"].sort(key=lambda x: (knobs.index(x["knob"]), x["seed"]))
            write_json(Path(args.out + ".json"), result)
            write_text(Path(args.out + ".md"), markdown(result))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    print()
    print(markdown(result))


if __name__ == "__main__":
    main()
