"""`scarce quickstart`: the whole spine on the embedded corpus in a few minutes on a laptop CPU.

Prepares a fixed token budget from the Python standard library, trains the `tiny` preset for two
epochs over it (or continues the run a kill left), evaluates on select and val, and prints a summary
and where the results are.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from scarce.cli import options
from scarce.config import get_preset, set_horizon
from scarce.data.prepare import prepare
from scarce.errors import UserError
from scarce.runs import launch
from scarce.runs.store import check_results_root


def add_parser(sub) -> None:
    p = sub.add_parser("quickstart", help="prepare the embedded corpus, train a tiny model, evaluate, summarise",
                       description="Prepare a 1M-token budget of the embedded stdlib corpus, train the tiny "
                                   "preset for 2 epochs, evaluate and print a summary (~4 minutes on 2 CPU cores).")
    p.add_argument("--out", default="scarce-results/quickstart", help="folder for the token store and the run")
    p.add_argument("--train-tokens", type=options.parse_count, default=1_000_000, help="fixed training budget in tokens")
    p.add_argument("--epochs", type=float, default=2.0, help="passes over the training budget")
    options.add_threads(p, "CPU threads (default: torch's)")
    options.add_results(p)
    p.set_defaults(func=run)


def run(args) -> int:
    t0 = time.perf_counter()
    out = Path(args.out)
    # Checked before the corpus is prepared, so a bad option costs nothing and leaves nothing behind.
    if not 0 < args.epochs < math.inf:
        raise UserError(f"--epochs must be a finite number > 0, got {args.epochs}")
    options.check_out(args.out, "--out")
    check_results_root(args.results)
    store = prepare("stdlib", out / "data", vocab_size=4096, train_tokens=args.train_tokens,
                    select_tokens=100_000, val_tokens=100_000)
    cfg = set_horizon(get_preset("tiny"), epochs=args.epochs)
    cfg.train.threads = args.threads or 0
    cfg.data = str(store.path)
    run_dir = out / "run"
    summary = launch.run(cfg, run_dir, args.results)
    print_summary(summary, store, run_dir, time.perf_counter() - t0)
    return 0


def print_summary(s: dict, store, run_dir: Path, seconds: float) -> None:
    rows = [
        ("token store", f"{store.path} ({store.manifest['splits']['train']['tokens']:,} train tokens, "
                        f"vocab {store.vocab_size})"),
        ("model", f"tiny: {s['params']:,} parameters ({s['non_embedding_params']:,} non-embedding)"),
        ("trained", f"{s['tokens_seen']:,} tokens = {s['epochs']:.2f} epochs, {s['flops']:.3g} FLOPs"),
        ("val loss", f"{s['val_loss']:.4f} nats/token, {s['val_bpb']:.4f} bits/byte (step {s['best_step']}, chosen on select)"),
        ("select loss", f"{s['select_loss']:.4f} nats/token"),
        ("wall time", f"{seconds:.0f} s in all, {s['wall_seconds']:.0f} s training"),
        ("results", f"{run_dir}/summary.json, metrics.jsonl, checkpoints/; `scarce runs` lists the run"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\nscarce quickstart summary")
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
