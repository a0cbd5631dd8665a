"""A GPT with the modern baseline: pre-norm RMSNorm, rotary attention, ReLU² MLP, no biases.

`GPT.forward` is a loop over blocks; parameter counts and FLOPs per token live beside the model so
that the trainer, the benchmarks and the scaling fits use one definition.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scarce.config import ModelConfig
from scarce.model.attention import CausalSelfAttention
from scarce.model.mlp import build_mlp
from scarce.model.norm import rms_norm
from scarce.model.rotary import Rotary


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, rotary: Rotary):
        super().__init__()
        self.attn = CausalSelfAttention(cfg, rotary)
        self.mlp = build_mlp(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(rms_norm(x)))
        return x + self.drop(self.mlp(rms_norm(x)))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size <= 0:
            raise ValueError("model.vocab_size must be set (take it from the token store)")
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, d)
        rotary = Rotary(cfg.head_dim, cfg.seq_len, cfg.rope_base)
        self.blocks = nn.ModuleList(Block(cfg, rotary) for _ in range(cfg.depth))
        self.head = None if cfg.tie_embeddings else nn.Linear(d, cfg.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, 0.02), residual output projections scaled by 1/sqrt(2 * depth)."""
        for name, p in self.named_parameters():
            std = 0.02
            if name.endswith("proj.weight"):
                std = 0.02 / math.sqrt(2 * self.cfg.depth)
            nn.init.normal_(p, mean=0.0, std=std)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        x = rms_norm(x)
        weight = self.embed.weight if self.head is None else self.head.weight
        return F.linear(x, weight)  # (B, T, V)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V) without targets; with targets, the mean cross-entropy in nats."""
        logits = self.logits(idx)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


# ---------------------------------------------------------------------------------------------
# Counting


def param_counts(model: GPT) -> dict[str, int]:
    """Total parameters and non-embedding parameters (the embedding table, and the head when untied, excluded)."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.embed.weight.numel() + (model.head.weight.numel() if model.head is not None else 0)
    return {"total": total, "non_embedding": total - embedding}


def flops_per_token(model: GPT) -> float:
    """Training FLOPs per token: 6 x matmul parameters (the head included, the embedding lookup not)
    plus the attention term 12 * layers * width * seq_len (PaLM / nanochat convention)."""
    cfg = model.cfg
    matmul = param_counts(model)["non_embedding"] + cfg.vocab_size * cfg.d_model  # head (tied or not)
    attention = 12 * cfg.depth * cfg.d_model * cfg.seq_len
    return 6.0 * matmul + attention
