"""Ensemble evaluation speed: member-tokens per second of `scarce.ensemble.evaluate_ensemble` on an existing
ensemble, beside one member's plain forward pass over the same windows (what the ensemble's bookkeeping costs).

    python benchmarks/ensemble_eval.py --ensemble DIR [--split val] [--combine logit] [--threads 2] [--repeats 3]

DIR is a folder written by `scarce ensemble` (its ensemble.json names the members). Members are loaded one at a
time, as the evaluation does; the best of `--repeats` timings is kept. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from scarce.data.loader import eval_batches
from scarce.data.store import open_store
from scarce.ensemble import evaluate_ensemble
from scarce.rundir import Member, read_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ensemble", required=True, help="an ensemble folder (ensemble.json)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--combine", default="logit", choices=("logit", "prob"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # ensemble.json read here rather than through scarce.ensemble.read_ensemble, so that the script also times
    # earlier versions of scarce (PYTHONPATH=OLD_CHECKOUT/src) on the same members
    listed = json.loads((Path(args.ensemble) / "ensemble.json").read_text())["members"]
    members = [Member(Path(m["run_dir"]), Path(m["weights"])) for m in listed]
    cfg = read_config(members[0].run_dir)
    store = open_store(cfg.data)
    tokens, T = store.split(args.split), cfg.model.seq_len
    load0 = os.getloadavg()[0]

    def ensemble_pass() -> float:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            r = evaluate_ensemble(members, tokens, store.token_bytes(), T, args.batch_size, combine=args.combine,
                                  cache_dir=tmp)
        return r["tokens"] * len(members) / (time.perf_counter() - t0)

    def forward_pass() -> float:
        model = members[0].load("cpu")
        n, t0 = 0, time.perf_counter()
        with torch.no_grad():
            for x, y in eval_batches(tokens, T, args.batch_size):
                torch.log_softmax(model(x).float(), dim=-1)
                n += y.numel()
        return n / (time.perf_counter() - t0)

    ens = max(ensemble_pass() for _ in range(args.repeats))
    fwd = max(forward_pass() for _ in range(args.repeats))
    print(f"# {platform.processor() or platform.machine()} | {os.cpu_count()} cores | torch {torch.__version__} | "
          f"threads {args.threads} | load before {load0:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"# {len(members)} members, depth {cfg.model.depth}, width {cfg.model.d_model}, vocabulary "
          f"{cfg.model.vocab_size}, T {T}; {args.split} split {len(tokens):,} tokens; combine {args.combine}")
    print("| pass | member-tokens/s |\n|---|---:|")
    print(f"| ensemble evaluation (every prefix and member, per-window NLL) | {ens:,.0f} |")
    print(f"| one member's forward + log-softmax alone | {fwd:,.0f} |")
    print(f"| ensemble / forward | {ens / fwd:.2f} |")


if __name__ == "__main__":
    main()
