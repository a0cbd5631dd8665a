"""Logit soft-capping, c * tanh(x / c) (Gemma 2), as one autograd function.

The output logits (B, T, V) are the largest activation of a small model, so the three separate
elementwise ops of the plain form (divide, tanh, multiply), each allocating a (B, T, V) tensor, cost
as much as a transformer block at small widths. `capped_linear` folds the 1/c into the hidden
states before the unembedding (a (B, T, d) multiply instead of a (B, T, V) divide), and `_ScaledTanh`
computes c * tanh(z) in place on the fresh unembedding output, saving only the result y, from which the gradient
follows: d/dz c * tanh(z) = c - y^2 / c.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _ScaledTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, c: float) -> torch.Tensor:
        y = z.tanh_().mul_(c)  # in place: z is a fresh tensor that nothing else holds
        ctx.mark_dirty(z)
        ctx.save_for_backward(y)
        ctx.c = c
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (y,) = ctx.saved_tensors
        c = ctx.c
        return torch.mul(y, y).mul_(-1.0 / c).add_(c).mul_(grad), None


def softcap(x: torch.Tensor, c: float) -> torch.Tensor:
    """c * tanh(x / c), differentiable in x; equal to the plain expression up to rounding."""
    return _ScaledTanh.apply(x / c, c)


def capped_linear(h: torch.Tensor, weight: torch.Tensor, c: float) -> torch.Tensor:
    """softcap(F.linear(h, weight), c), with the division done on h."""
    return _ScaledTanh.apply(F.linear(h * (1.0 / c), weight), c)
