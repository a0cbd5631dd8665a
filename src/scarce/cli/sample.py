"""`scarce sample`: generate text from a run or an ensemble, or write the samples as a token store."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from scarce.cli import options
from scarce.data.store import check_free
from scarce.ensemble import read_ensemble
from scarce.errors import UserError
from scarce.sample import sample, synthesize


def add_parser(sub) -> None:
    s = sub.add_parser("sample", help="generate text from a run or an ensemble",
                       description="Sample unconditional text (starting after an end-of-text token) from a run's "
                                   "select-chosen weights, or from the logit-averaged ensemble of several runs.")
    s.add_argument("--run", nargs="+", metavar="RUN_DIR", help="run directory (several: sample from their ensemble)")
    s.add_argument("--ensemble", metavar="DIR", help="an ensemble folder with ensemble.json (all its members)")
    s.add_argument("--tokens", type=options.parse_count, default=200, help="tokens to generate (default 200)")
    s.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; 0 is greedy (default 1)")
    s.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens; 0 means all (default)")
    s.add_argument("--seed", type=int, default=0, help="seed of the sampler (default 0)")
    options.add_threads(s, "CPU threads (default 1)")
    s.add_argument("--store-out", metavar="DIR",
                   help="write the samples as the train split of a token store (the run's tokenizer, select and "
                        "val) instead of printing: synthetic data for sequence-level distillation")
    s.add_argument("--streams", type=int, default=64, help="with --store-out: rows sampled in parallel (default 64)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the models run (default auto: the GPU when there is one)")
    s.set_defaults(func=run)


def run(args) -> int:
    torch.set_num_threads(max(1, args.threads or 1))
    if bool(args.run) == bool(args.ensemble):
        raise UserError("give --run RUN_DIR (one or more) or --ensemble DIR")
    if not 0 <= args.temperature < math.inf:
        raise UserError(f"--temperature must be a finite number >= 0 (0 is greedy), got {args.temperature}")
    if args.top_k < 0:
        raise UserError("--top-k must be >= 0")
    if args.streams < 1:
        raise UserError(f"--streams must be >= 1, got {args.streams}")
    device = options.resolve_device(args.device)
    runs = args.run or [str(m.run_dir) for m in read_ensemble(Path(args.ensemble))[0]]
    if args.store_out:
        options.check_out(args.store_out, "--store-out")  # before sampling, which takes a while
        check_free(args.store_out)
        store = synthesize(runs, args.store_out, args.tokens, args.temperature, args.top_k, args.seed,
                           args.streams, device)
        print(f"wrote {args.tokens:,} sampled tokens -> {store.path}")
        return 0
    print(sample(runs, args.tokens, args.temperature, args.top_k, args.seed, device=device))
    return 0
