"""Value embeddings: a learned projection of the input embedding x0 added to the attention values.

Deep layers lose direct access to the token's identity; handing each selected layer a gated copy
of x0 in value space restores it at the cost of one d x d matrix (ResFormer's value residual, the
value embeddings of modded-nanogpt and NanoGPT Slowrun). The projection is zero-initialised, so the
model starts as the baseline.
"""

from __future__ import annotations

import torch
from torch import nn

from scarce.model.gates import HeadGate


class ValueEmbedding(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.gate = HeadGate(d_model, n_heads)

    def init_weights(self) -> None:
        nn.init.zeros_(self.proj.weight)

    def forward(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Addition to the values, (B, H, T, D), from the block input x and the embedding x0 (B, T, d)."""
        B, T, C = x0.shape
        ve = self.proj(x0).view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, H, T, D)
        return self.gate(x) * ve
