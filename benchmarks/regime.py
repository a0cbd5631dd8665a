"""Where is the data-scarce regime on this machine? Train a grid of (size, weight decay, dropout, epochs)
on one fixed budget and print select and val loss per run, so a bench preset can be sized where the
standard recipe overfits (val against epochs has an interior minimum) and regularization pays.

    python benchmarks/regime.py --out /tmp/regime --budget 100k --sizes 2x64 4x128 --epochs 2 4 8 16 \\
        --settings std:0.1:0 reg:1.6:0.1 --workers 2

Each run is an ordinary scarce run (resumable: rerun the same command after a kill). The table lists,
per run: best select loss, the val loss of that checkpoint, |select - val|, and the epoch it was chosen at.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from scarce.cli.options import parse_count
from scarce.config import apply_overrides, get_preset
from scarce.data.prepare import prepare
from scarce.rundir import read_summary
from scarce.runs.executors import make_executor
from scarce.runs.launch import Job, run_jobs


def config(store: str, depth: int, width: int, wd: float, dropout: float, epochs: float, seed: int, lr: float,
           seq_len: int, batch: int, extra: list[str]):
    cfg = apply_overrides(get_preset("tiny"), [
        f"model.depth={depth}", f"model.width={width}", "model.head_dim=32", f"model.seq_len={seq_len}",
        f"train.batch_size={batch}", f"optim.lr={lr}", f"optim.weight_decay={wd}", f"model.dropout={dropout}",
        f"train.epochs={epochs}", f"train.seed={seed}", "train.log_every=1000", *extra])
    cfg.data = store
    return cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--budget", type=parse_count, default=100_000)
    p.add_argument("--heldout", type=parse_count, default=50_000, help="select and val tokens each")
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--near-duplicates", type=float, default=0.5, help="prepare's near-duplicate share (0: keep)")
    p.add_argument("--heldout-window", type=parse_count, default=512, help="prepare's held-out window (0: off)")
    p.add_argument("--sizes", nargs="+", default=["2x64", "4x128"], help="DEPTHxWIDTH")
    p.add_argument("--epochs", nargs="+", type=float, default=[2, 4, 8, 16])
    p.add_argument("--settings", nargs="+", default=["std:0.1:0"], help="NAME:WD:DROPOUT[:LR[:ATTN_DROPOUT]]")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--set", action="append", default=[], help="extra overrides for every run")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    out = Path(a.out)
    base = prepare("stdlib", out / "store", a.vocab, a.budget, a.heldout, a.heldout, tokenizer_bytes=4_000_000,
                   log=lambda *x: None, near_duplicates=a.near_duplicates, heldout_window=a.heldout_window)
    store = str(base.path)
    jobs, keys = [], []
    for size in a.sizes:
        depth, width = map(int, size.split("x"))
        for setting in a.settings:
            name, wd, dropout, *rest = setting.split(":")
            lr = float(rest[0]) if rest else a.lr
            extra = a.set + ([f"model.attn_dropout={rest[1]}"] if len(rest) > 1 else [])
            for e in a.epochs:
                for seed in range(a.seeds):
                    cfg = config(store, depth, width, float(wd), float(dropout), e, seed, lr, a.seq_len, a.batch,
                                 extra)
                    run_dir = out / "runs" / f"{size}-{name}-e{e:g}-s{seed}"
                    jobs.append(Job(cfg, run_dir))
                    keys.append((size, name, e, seed))
    jobs_left = [(j, k) for j, k in zip(jobs, keys) if read_summary(j.run_dir) is None]
    order = sorted(jobs_left, key=lambda jk: -jk[1][2] * int(jk[1][0].split("x")[1]) ** 2)  # longest first
    run_jobs([j for j, _ in order], make_executor("local", a.workers, threads=1), str(out / "results"),
             on_done=lambda i, r: print(order[i][1], r["status"], r.get("error", "")[:200], flush=True))
    rows = []
    for job, (size, name, e, seed) in zip(jobs, keys):
        s = read_summary(job.run_dir)
        if s:
            rows.append({"size": size, "setting": name, "epochs": e, "seed": seed, "params": s["non_embedding_params"],
                         "select": s["select_loss"], "val": s["val_loss"], "best_epoch": s["best_step"] / s["steps"] * e,
                         "final_val": s["final_val_loss"], "minutes": s["wall_seconds"] / 60})
    print(f"budget {a.budget:,} tokens, vocab {a.vocab}, T {a.seq_len}, batch {a.batch}, lr {a.lr}")
    print("| size | non-emb params | tokens/param | setting | epochs | select | val | abs(s-v) | chosen at epoch | final val | min |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {r['params']:,} | {a.budget / r['params']:.2f} | {r['setting']} | {r['epochs']:g} | "
              f"{r['select']:.4f} | {r['val']:.4f} | {abs(r['select'] - r['val']):.3f} | {r['best_epoch']:.1f} | "
              f"{r['final_val']:.4f} | {r['minutes']:.1f} |")
    json.dump(rows, open(out / "table.json", "w"), indent=1)
    if rows:
        print(f"mean abs(select - val): {statistics.mean(abs(r['select'] - r['val']) for r in rows):.3f}; "
              f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
