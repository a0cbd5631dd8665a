"""Generation speed: tokens/s of 256-token continuations through the KV cache (`scarce.sample.generate`) beside
the uncached path scarce had before it (every step re-runs the model on the whole sequence so far, up to
seq_len tokens, and keeps the last position), on the same model, rows and sampler; and the memory an ensemble's
generation holds (weights plus caches of every member).

    python benchmarks/generation.py [--preset small] [--stack] [--vocab 4096] [--tokens 256] [--rows 1,16,64]
                                    [--uncached-rows 1,16] [--members 4] [--threads 2]

Weights are random (speed does not depend on them). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from scarce.config import get_preset, with_slowrun_stack
from scarce.model.gpt import GPT, param_counts
from scarce.model.looping import layer_order
from scarce.sample import Sampling, generate, pick


@torch.no_grad()
def uncached(model: GPT, rows: int, tokens: int, seed: int) -> torch.Tensor:
    """The pre-cache sampler: the whole window through the model at every step."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(rows, 1, dtype=torch.long)
    for _ in range(tokens):
        lp = torch.log_softmax(model(ids[:, -model.cfg.seq_len:])[:, -1].float(), -1)
        ids = torch.cat([ids, pick(lp, Sampling(1.0), gen)[:, None]], dim=1)
    return ids[:, 1:]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cache_bytes(model: GPT, rows: int) -> int:
    cfg = model.cfg
    passes = len(layer_order(cfg.depth, cfg.loop_range, model.loops))
    return 2 * passes * rows * cfg.n_heads * cfg.seq_len * cfg.head_dim * 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--stack", action="store_true", help="the slowrun stack on the preset (looping on)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rows", default="1,16,64")
    ap.add_argument("--uncached-rows", default="1,16")
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = get_preset(args.preset)
    if args.stack:
        cfg = with_slowrun_stack(cfg)
    cfg.model.vocab_size = args.vocab
    torch.manual_seed(0)
    model = GPT(cfg.model).eval()
    if cfg.model.loop_range is not None:
        model.loops = cfg.model.loop_extra
    n = param_counts(model)
    print(f"# generation: {args.preset}{' + slowrun stack' if args.stack else ''}, width {cfg.model.d_model}, depth "
          f"{cfg.model.depth}, seq_len {cfg.model.seq_len}, vocab {args.vocab}, {n['total'] / 1e6:.2f}M parameters; "
          f"{args.tokens}-token continuations; {args.threads} threads; torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}\n")
    print("| rows | cached tok/s | uncached tok/s | speed-up |")
    print("|---|---|---|---|")
    uncached_rows = {int(r) for r in args.uncached_rows.split(",") if r}
    for rows in (int(r) for r in args.rows.split(",")):
        prompts = torch.zeros(rows, 1, dtype=torch.long)
        generate([model], prompts, 8)  # warm-up
        cached = min(timed(lambda p=prompts: generate([model], p, args.tokens, seed=1)) for _ in range(2))
        fast = rows * args.tokens / cached
        slow = (rows * args.tokens / timed(lambda r=rows: uncached(model, r, args.tokens, 1))
                if rows in uncached_rows else None)
        print(f"| {rows} | {fast:,.0f} | {'-' if slow is None else f'{slow:,.0f}'} | "
              f"{'-' if slow is None else f'{fast / slow:.1f}x'} |")
    k, rows = args.members, max(int(r) for r in args.rows.split(","))
    members = [model] * k  # the same weights K times: speed and memory are what K distinct members cost
    prompts = torch.zeros(rows, 1, dtype=torch.long)
    t = timed(lambda: generate(members, prompts, args.tokens, seed=1))
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    print(f"\nensemble of {k}, {rows} rows: {rows * args.tokens / t:,.0f} tok/s; memory held: {k} x "
          f"({weights / 2**20:.1f} MiB weights + {cache_bytes(model, rows) / 2**20:.1f} MiB cache) = "
          f"{k * (weights + cache_bytes(model, rows)) / 2**20:.1f} MiB (fp32)")


if __name__ == "__main__":
    main()
