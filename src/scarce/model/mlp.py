"""The MLP: ReLU squared (So et al., 2021, Primer), the nanoGPT-speedrun default."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scarce.config import ModelConfig


class ReluSquaredMLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=False)
        self.proj = nn.Linear(cfg.mlp_hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.relu(self.fc(x)).square())


def build_mlp(cfg: ModelConfig) -> nn.Module:
    return ReluSquaredMLP(cfg)
