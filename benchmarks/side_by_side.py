"""scarce's training step against a minimal reference loop of the same shapes, in one process, A-B-A.

    python benchmarks/side_by_side.py [--threads 2] [--steps 30] [--shapes 4x128x16 6x384x8]

The reference is plain PyTorch, what a nanoGPT-style script does: token embedding, pre-LayerNorm blocks with
scaled_dot_product_attention (causal) and a GELU MLP, a tied head, cross-entropy, fused AdamW, gradient
clipping. scarce runs its own `Trainer.train_step` on a token store of the same vocabulary. Order A (reference),
B (scarce), A again: the two A's show the machine's drift. The allocator setting scarce's trainer makes on the CPU
(`runtime.keep_freed_memory`) is made at the start, for the reference loop as well: the ratio compares the loops. Run it on an otherwise idle machine; the table
records the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from scarce.config import apply_overrides, get_preset
from scarce.data.prepare import prepare
from scarce.train.runtime import keep_freed_memory
from scarce.train.trainer import Trainer


class RefBlock(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.fc, self.out = nn.Linear(d, 4 * d, bias=False), nn.Linear(4 * d, d, bias=False)
        self.heads = heads

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, d // self.heads).transpose(1, 3).unbind(2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class RefGPT(nn.Module):
    def __init__(self, vocab: int, depth: int, d: int, heads: int, T: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(T, d)
        self.blocks = nn.ModuleList(RefBlock(d, heads) for _ in range(depth))
        self.ln = nn.LayerNorm(d)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        logits = F.linear(self.ln(x), self.wte.weight)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def time_reference(vocab: int, depth: int, d: int, heads: int, T: int, B: int, steps: int) -> float:
    torch.manual_seed(0)
    model = RefGPT(vocab, depth, d, heads, T)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, fused=True)
    x, y = torch.randint(0, vocab, (2, B, T))

    def step():
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return B * T * steps / _timed(step, steps)


def time_scarce(store: str, depth: int, d: int, T: int, B: int, steps: int, threads: int) -> float:
    cfg = apply_overrides(get_preset("tiny"), [f"model.depth={depth}", f"model.width={d}", f"model.seq_len={T}",
                                               f"train.batch_size={B}", f"train.threads={threads}", "train.epochs=1"])
    cfg.data = store
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "run", quiet=True)
        trainer.model.train()
        i = iter(range(10**9))
        return B * T * steps / _timed(lambda: trainer.train_step(next(i) % trainer.steps), steps)


def _timed(step, steps: int) -> float:
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--shapes", nargs="+", default=["4x128x16", "6x384x8"], help="DEPTHxWIDTHxBATCH (T 256)")
    ap.add_argument("--store", help="a token store of vocabulary 4096 (default: prepared from stdlib in /tmp)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # the trainer tunes the process's allocator on the CPU; done first, so A and A' have it too
    store = args.store or str(prepare("stdlib", Path(tempfile.gettempdir()) / "scarce-side-by-side", 4096, 500_000,
                                      50_000, 50_000, tokenizer_bytes=4_000_000, log=lambda *a: None).path)
    load0 = os.getloadavg()
    print(f"# {platform.processor() or platform.machine()} | {os.cpu_count()} cores | torch {torch.__version__} | "
          f"threads {args.threads} | fp32 eager | load before {load0[0]:.2f}")
    print("| shape | reference tokens/s (A) | scarce tokens/s (B) | reference again (A') | scarce / mean(A, A') |")
    print("|---|---:|---:|---:|---:|")
    for shape in args.shapes:
        depth, d, B = map(int, shape.split("x"))
        a = time_reference(4096, depth, d, d // 32, 256, B, args.steps)
        b = time_scarce(store, depth, d, 256, B, args.steps, args.threads)
        a2 = time_reference(4096, depth, d, d // 32, 256, B, args.steps)
        print(f"| {depth} layers, width {d}, T 256, batch {B} | {a:,.0f} | {b:,.0f} | {a2:,.0f} | "
              f"{b / ((a + a2) / 2):.2f}x |")
    print(f"# load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
