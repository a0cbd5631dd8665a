"""Learned scalar shortcuts across the stack: U-Net skips and residual lambdas (modded-nanogpt)."""

from __future__ import annotations

import torch
from torch import nn


class UNetSkips(nn.Module):
    """The output of block i of the first half is added, times a learned weight, into the input of
    its mirror depth-1-i in the second half. Weights start at 0 (the baseline); on looped passes the
    latest output of the mirror is used."""

    def __init__(self, depth: int):
        super().__init__()
        self.depth = depth
        self.weight = nn.Parameter(torch.zeros(depth // 2))

    def init_weights(self) -> None:
        nn.init.zeros_(self.weight)

    def receive(self, i: int, x: torch.Tensor, saved: dict[int, torch.Tensor]) -> torch.Tensor:
        j = self.depth - 1 - i
        if j < self.depth // 2 and j in saved:
            return x + self.weight[j] * saved[j]
        return x

    def send(self, i: int, x: torch.Tensor, saved: dict[int, torch.Tensor]) -> None:
        if i < self.depth // 2:
            saved[i] = x


class ResidualLambdas(nn.Module):
    """x = lambda_resid[i] * x + lambda_x0[i] * x0 before block i: each block can rescale the residual
    stream and re-inject the embedding. Starts at (1, 0), the baseline."""

    def __init__(self, depth: int):
        super().__init__()
        self.resid = nn.Parameter(torch.ones(depth))
        self.x0 = nn.Parameter(torch.zeros(depth))

    def init_weights(self) -> None:
        nn.init.ones_(self.resid)
        nn.init.zeros_(self.x0)

    def forward(self, i: int, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return self.resid[i] * x + self.x0[i] * x0
