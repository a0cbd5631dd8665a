"""Training throughput: tokens/s, achieved FLOP/s and MFU against a matmul peak measured in the same run.

    python benchmarks/throughput.py [--presets tiny small] [--threads 2] [--steps 20] [--batch-size 16]

The step timed is the trainer's own: forward, backward, gradient clipping and fused AdamW, on
random tokens (vocabulary 4096). FLOPs per token follow `scarce.model.gpt.flops_per_token`
(6 x matmul parameters + 12 x layers x width x seq_len). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from scarce.config import get_preset
from scarce.device import pick_device
from scarce.model.gpt import GPT, flops_per_token, param_counts
from scarce.train.optim import build_optimizer
from scarce.train.runtime import keep_freed_memory, measure_matmul_flops

VOCAB = 4096


def matmul_peak(seconds: float) -> tuple[float, int]:
    """Best fp32 matmul FLOP/s over a few square sizes."""
    return max((measure_matmul_flops(n, seconds), n) for n in (512, 1024, 2048))


def time_preset(name: str, batch_size: int, steps: int, device: str, compile_: bool | str) -> dict:
    """`compile_`: False, True (torch.compile's default mode) or a mode name ('reduce-overhead': CUDA graphs)."""
    cfg = get_preset(name)
    cfg.model.vocab_size = VOCAB
    torch.manual_seed(0)
    model = GPT(cfg.model).to(device)
    opt = build_optimizer(model, cfg.optim, device)
    fwd = torch.compile(model, mode=compile_ if isinstance(compile_, str) else None) if compile_ else model
    T = cfg.model.seq_len
    x, y = torch.randint(0, VOCAB, (2, batch_size, T), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)

    def step():
        with autocast:
            loss = fwd(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    for _ in range(3):  # warm-up; with compile, the compilation
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    tok_s = batch_size * T / dt
    return {"preset": name, "params": param_counts(model)["total"], "T": T, "B": batch_size,
            "tok_s": tok_s, "flops": tok_s * flops_per_token(model), "warmup_s": warmup, "compile": compile_}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default=pick_device())
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "cpu":
        keep_freed_memory()  # as the trainer does on the CPU
    if args.device == "cuda":
        from scarce.train.runtime import peak_flops
        peak, n = peak_flops("cuda", 0), 0
    else:
        peak, n = matmul_peak(1.0)
    print(f"# {platform.processor() or platform.machine()} | torch {torch.__version__} | threads {args.threads} | "
          f"device {args.device} | compile {args.compile}")
    print(f"# peak: {peak / 1e9:.1f} GFLOP/s ({'table bf16' if args.device == 'cuda' else f'fp32 matmul {n}x{n}x{n}'})")
    print(f"{'preset':<12}{'params':>12}{'T':>6}{'B':>5}{'tok/s':>12}{'GFLOP/s':>10}{'MFU':>8}{'warm-up s':>11}")
    for name in args.presets:
        r = time_preset(name, args.batch_size, args.steps, args.device, args.compile)
        print(f"{r['preset']:<12}{r['params']:>12,}{r['T']:>6}{r['B']:>5}{r['tok_s']:>12,.0f}"
              f"{r['flops'] / 1e9:>10.1f}{100 * r['flops'] / peak:>7.1f}%{r['warmup_s']:>11.1f}")


if __name__ == "__main__":
    main()
