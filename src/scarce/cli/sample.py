"""`scarce sample`: generate text from a run or an ensemble (through the KV cache)."""

from __future__ import annotations

import torch

from scarce.cli import options
from scarce.device import pick_device
from scarce.sample import sample


def add_parser(sub) -> None:
    s = sub.add_parser("sample", help="generate text from a run or an ensemble",
                       description="Sample unconditional text (starting after an end-of-text token) from a run's "
                                   "select-chosen weights, or from the combined distribution of several runs. "
                                   "To write generated text as a token store, use `scarce synth`.")
    options.add_models(s)
    s.add_argument("--tokens", type=options.parse_count, default=200, help="tokens to generate (default 200)")
    s.add_argument("--rows", type=options.parse_count, default=1, help="independent samples, generated together "
                                                                       "(default 1)")
    options.add_sampling(s)
    s.set_defaults(func=run)


def run(args) -> int:
    torch.set_num_threads(max(1, args.threads or 1))
    runs = options.model_runs(args)
    sampling = options.sampling(args)
    texts = sample(runs, args.tokens, sampling, args.seed, pick_device(args.device), args.rows)
    print("\n\n---\n\n".join(texts))
    return 0
