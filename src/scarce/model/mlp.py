"""The MLP: ReLU squared (So et al., 2021, Primer), the nanoGPT-speedrun default, SwiGLU (Shazeer, 2020),
the gated MLP of LLaMA and of the fixed-data records, or GELU (tanh approximation), GPT-2's."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scarce.config import ModelConfig


class ReluSquared(torch.autograd.Function):
    """relu(z)^2 with its backward written out: 2 relu(z) g from the one saved tensor. Autograd's own chain
    (square's backward, then relu's) makes a copy and two more passes; same numbers, ~40% less time on the CPU."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        r = torch.relu(z)
        ctx.save_for_backward(r)
        return r * r

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (r,) = ctx.saved_tensors
        return grad * r * 2


def relu_squared(z: torch.Tensor) -> torch.Tensor:
    return ReluSquared.apply(z)


class ReluSquaredMLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=cfg.bias)
        self.proj = nn.Linear(cfg.mlp_hidden, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(relu_squared(self.fc(x)))


class GeluMLP(ReluSquaredMLP):
    """GPT-2's MLP: GELU with the tanh approximation ('gelu_new')."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class SwiGLU(nn.Module):
    """proj(silu(gate(x)) * fc(x)); hidden ~8/3 x width keeps the parameters of a 4x two-matrix MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=cfg.bias)
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=cfg.bias)
        self.proj = nn.Linear(cfg.mlp_hidden, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.silu(self.gate(x)) * self.fc(x))


def build_mlp(cfg: ModelConfig) -> nn.Module:
    return {"swiglu": SwiGLU, "gelu": GeluMLP, "relu2": ReluSquaredMLP}[cfg.mlp](cfg)
