"""Normalisation. The baseline is RMSNorm without a learned gain (as in nanochat / modded-nanogpt): fewer
parameters, same quality. Models started from other families' weights need theirs: RMSNorm with a gain
(Llama) or LayerNorm with gain and bias (GPT-2), switched by `model.norm` and `model.norm_affine`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scarce.config import ModelConfig


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


class Norm(nn.Module):
    """The model's norm over the last dimension: parameter-free RMSNorm unless the config asks for more."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.layer = cfg.norm == "layer"
        self.eps = cfg.norm_eps or (1e-5 if self.layer else None)
        self.weight = nn.Parameter(torch.ones(d)) if cfg.norm_affine else None
        self.bias = nn.Parameter(torch.zeros(d)) if cfg.norm_affine and self.layer else None

    def init_weights(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer:
            return F.layer_norm(x, (x.size(-1),), self.weight, self.bias, self.eps)
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)
