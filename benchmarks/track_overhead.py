"""What a tracker costs a run: wall time of the same tiny run with no tracker, TensorBoard and W&B (offline),
interleaved over repeats (A-B-C, A-B-C, ...) so the machine's drift falls on every arm alike.

    python benchmarks/track_overhead.py [--repeats 3] [--log-every 1]

`--log-every 1` logs every step, the worst case for a tracker (each log line is one scalars call); the runs are
small enough that the tracker's fixed start-up cost (W&B's service process) shows too. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from scarce.config import apply_overrides, get_preset
from scarce.data.prepare import prepare
from scarce.runs.launch import train

ARMS = ("none", "tensorboard", "wandb")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--log-every", type=int, default=1)
    p.add_argument("--tokens", type=int, default=131072)
    a = p.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = prepare("stdlib", root / "store", 512, 400_000, 20_000, 20_000, tokenizer_bytes=2_000_000,
                        log=lambda *x: None)
        cfg = apply_overrides(get_preset("tiny"), {"model.depth": 2, "model.seq_len": 128, "train.batch_size": 8,
                                                   "train.tokens": a.tokens, "train.log_every": a.log_every,
                                                   "train.threads": 1, "train.eval_tokens": 8192})
        cfg.data = str(store.path)
        seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for r in range(a.repeats):
            for arm in ARMS:
                t0 = time.perf_counter()
                train(apply_overrides(cfg, {"train.tracker": arm}), root / f"{arm}-{r}", str(root / "res"), quiet=True)
                seconds[arm].append(time.perf_counter() - t0)
        steps = a.tokens // (8 * 128)
    base = statistics.median(seconds["none"])
    print(f"{steps} steps, a log line every {a.log_every} step(s), {a.repeats} repeats, 1 thread\n")
    print("| tracker | median s | min-max s | vs none |")
    print("|---|---:|---:|---:|")
    for arm in ARMS:
        s = seconds[arm]
        print(f"| {arm} | {statistics.median(s):.2f} | {min(s):.2f}-{max(s):.2f} | "
              f"{statistics.median(s) / base - 1:+.1%} |")


if __name__ == "__main__":
    main()
