"""AdamW with parameter groups.

Matrices get weight decay; norms, scalars and biases (anything with fewer than 2 dims) never do; the
embedding and head get their own learning rate and are decayed only on request. Each group keeps its
peak rate in `base_lr` so the schedule can scale it.
"""

from __future__ import annotations

import torch
from torch import nn

from scarce.config import OptimConfig


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    embed_ids = {id(model.embed.weight)}
    if getattr(model, "head", None) is not None:
        embed_ids.add(id(model.head.weight))
    matrices, embeds, scalars = [], [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in embed_ids:
            embeds.append(p)
        elif p.ndim >= 2:
            matrices.append(p)
        else:
            scalars.append(p)
    embed_lr = cfg.embed_lr or cfg.lr
    groups = [
        {"name": "matrices", "params": matrices, "base_lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"name": "embeddings", "params": embeds, "base_lr": embed_lr,
         "weight_decay": cfg.weight_decay if cfg.decay_embeddings else 0.0},
        {"name": "scalars", "params": scalars, "base_lr": cfg.lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: str) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    for g in groups:
        g["lr"] = g["base_lr"]
    return torch.optim.AdamW(groups, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=True)


def set_lr(optimizer: torch.optim.Optimizer, multiplier: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * multiplier
