"""Optimizers with parameter groups: AdamW, or Muon for the hidden matrices (`muon.MuonAdamW`).

Matrices get weight decay; norms, scalars, gates and biases never do; the embedding and head get
their own learning rate and are decayed only on request. Each group keeps its peak rate in `base_lr`
and its weight decay in `base_wd` so the schedules can scale them.
"""

from __future__ import annotations

import torch
from torch import nn

from scarce.config import OptimConfig
from scarce.model.gates import HeadGate
from scarce.model.iha import HeadMix
from scarce.train.muon import MuonAdamW


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    embed_ids = {id(m.weight) for m in (model.embed, getattr(model, "pos", None), getattr(model, "head", None))
                 if m is not None}
    # gates and IHA's head-mixing matrices: small, square or narrow, trained by AdamW without decay (the record's)
    gate_ids = {id(p) for m in model.modules() if isinstance(m, HeadGate | HeadMix) for p in m.parameters()}
    matrices, embeds, scalars = [], [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in embed_ids:
            embeds.append(p)
        elif p.ndim >= 2 and id(p) not in gate_ids:
            matrices.append(p)
        else:
            scalars.append(p)
    muon = cfg.optimizer == "muon"
    embed_lr = cfg.embed_lr or cfg.lr
    embed_wd = cfg.weight_decay if cfg.decay_embeddings else 0.0
    groups = [
        {"name": "matrices", "params": matrices, "base_lr": cfg.muon_lr if muon else cfg.lr,
         "weight_decay": cfg.weight_decay, "muon": muon},
        {"name": "embeddings", "params": embeds, "base_lr": embed_lr, "weight_decay": embed_wd},
        {"name": "scalars", "params": scalars, "base_lr": cfg.scalar_lr or cfg.lr, "weight_decay": 0.0},
    ]
    for g in groups:
        g["base_wd"] = g["weight_decay"]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: str) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    for g in groups:
        g["lr"] = g["base_lr"]
    if cfg.optimizer == "muon" or cfg.cautious_wd:
        return MuonAdamW(groups, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, momentum=cfg.muon_momentum,
                         cautious_wd=cfg.cautious_wd, orth=cfg.muon_orth, row_norm=cfg.muon_row_norm)
    for g in groups:
        g.pop("muon", None)
    return torch.optim.AdamW(groups, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=True)


def set_lr(optimizer: torch.optim.Optimizer, multiplier: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * multiplier


def muon_momentum(step: int, cfg: OptimConfig) -> float:
    """Muon's momentum at `step`: linear from muon_momentum_start to muon_momentum over muon_momentum_warmup steps
    (NanoGPT Slowrun: 0.85 to 0.95 over 300), then constant; a pure function of the step, so resume is exact."""
    if not cfg.muon_momentum_warmup:
        return cfg.muon_momentum
    t = min(step / cfg.muon_momentum_warmup, 1.0)
    return (1 - t) * cfg.muon_momentum_start + t * cfg.muon_momentum


def set_momentum(optimizer: torch.optim.Optimizer, momentum: float) -> None:
    for g in optimizer.param_groups:
        if g.get("muon"):
            g["momentum"] = momentum


def set_weight_decay(optimizer: torch.optim.Optimizer, multiplier: float) -> None:
    for g in optimizer.param_groups:
        g["weight_decay"] = g["base_wd"] * multiplier
