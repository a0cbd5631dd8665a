"""Ablation of the data-efficiency knobs at tiny scale on fixed data, through `scarce ablate`: each knob added
alone to the baseline and the `slowrun` stack (with and without looping), over several seeds, as paired val
differences and data multiples.

    python benchmarks/ablate.py [--train-tokens 1000000] [--epochs 2] [--seeds 3] [--workers 2]
        [--knobs swiglu dropout ...] [--set model.width=128 ...] [--work /tmp/scarce-ablate]

Data: the embedded stdlib corpus in one token store of 4x --train-tokens (vocabulary 1024, 50k select, 50k val),
cut to 1x and 2x with the same val split; the ablation trains on 1x. Model: depth 4, width 64, 2 heads of 32,
T 128, batch 16, the `tiny` preset's AdamW; a knob changes only its own fields (docs/architecture.md). The
reference law is the baseline trained once on 1x, 2x and 4x (`--reference-data`): each knob's multiple is
the data the baseline would need to match it. Everything else (pairing, intervals, cost, the report in
WORK/ablate/report.md) is `scarce ablate`'s: docs/recipes.md. Resumable: rerun the same command after a kill.

The tables in benchmarks/results/ablate_cpu*.md were made by the earlier version of this script (nats and
time per token, no multiples); `record_stack_cpu.md` by `scarce ablate` directly.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from scarce.config import parse_assignments
from scarce.data.prepare import derive_store, prepare
from scarce.recipes import run_recipe
from scarce.report.ablation import write_report
from scarce.runs.executors import Execution

VOCAB, HELDOUT_TOKENS = 1024, 50_000
BASE = {"model.depth": 4, "model.width": 64, "model.head_dim": 32, "model.seq_len": 128, "train.batch_size": 16,
        "train.log_every": 1000}
KNOBS: dict[str, str] = {
    "swiglu": "model.mlp=swiglu", "value_embed": "model.value_embed=alt", "unet_skips": "model.unet_skips=true",
    "resid_lambdas": "model.resid_lambdas=true", "attn_gate": "model.attn_gate=true", "xsa": "model.xsa=true",
    "partial_rotary": "model.rotary_frac=0.5", "key_offset": "model.key_offset=alt", "qk_norm": "model.qk_norm=true",
    "softcap": "model.softcap=15", "windows": "model.window_pattern=SSSL", "dropout": "model.dropout=0.1",
    "looping": "model.loop_layers=auto,model.loop_extra=2,model.loop_from=0.5", "mtp": "model.mtp_weight=0.3",
    "muon": "optim.optimizer=muon", "cautious_wd": "optim.cautious_wd=true", "weight_decay": "optim.weight_decay=1.3",
    "wd_schedule": "optim.wd_schedule=lr", "ema": "optim.ema_decay=0.99,optim.ema_start=0.5",
    "lastk": "optim.avg_last=5,optim.avg_every=10", "slowrun_noloop": "@slowrun-noloop", "slowrun": "@slowrun",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-tokens", type=int, default=1_000_000, help="tokens of the 1x train split (default 1M)")
    p.add_argument("--epochs", type=float, default=2.0, help="passes over the train split per run (default 2)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per config (default 3)")
    p.add_argument("--knobs", nargs="+", choices=list(KNOBS), default=list(KNOBS), help="knobs (default all)")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="extra overrides for every config")
    p.add_argument("--workers", type=int, default=2, help="parallel 1-thread processes (default 2)")
    p.add_argument("--work", default="/tmp/scarce-ablate", help="folder for the token stores, runs and report")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the workers
    work = Path(args.work)
    full = prepare("stdlib", work / f"store-{4 * args.train_tokens}-v{VOCAB}", vocab_size=VOCAB,
                   train_tokens=4 * args.train_tokens, select_tokens=HELDOUT_TOKENS, val_tokens=HELDOUT_TOKENS,
                   tokenizer_bytes=2_000_000, threads=1, log=lambda *a: None)
    one, two = (derive_store(full, work / f"train-{m * args.train_tokens}", m * args.train_tokens) for m in (1, 2))
    overrides = {**BASE, "train.epochs": args.epochs, **parse_assignments(args.set)}
    result = run_recipe("ablate", str(one.path), str(work / "ablate"), overrides=overrides,
                        execution=Execution(results=str(work / "results")).held(args.workers, threads=1),
                        changes=[f"{k}:{KNOBS[k]}" for k in dict.fromkeys(args.knobs)], seeds=args.seeds,
                        stack=False, reference_data=[str(two.path), str(full.path)])
    print(write_report(result, work / "ablate").read_text())


if __name__ == "__main__":
    main()
