"""Per-head sigmoid gates read from a few input channels (modded-nanogpt / NanoGPT Slowrun).

The gate is 2 * sigmoid(W x[..., :c]) with W zero-initialised, so it is exactly 1 at init: a gated
model starts as the ungated one and learns where to damp a head (a context-dependent no-op).
"""

from __future__ import annotations

import torch
from torch import nn

GATE_CHANNELS = 12
"""Input channels a gate reads: enough to switch heads off per token, too few to be a second attention."""


class HeadGate(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.channels = min(GATE_CHANNELS, d_model)
        self.weight = nn.Parameter(torch.zeros(n_heads, self.channels))

    def init_weights(self) -> None:
        nn.init.zeros_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> per-head factors (B, H, T, 1)."""
        g = 2 * torch.sigmoid(x[..., : self.channels] @ self.weight.t())  # (B, T, H)
        return g.transpose(1, 2).unsqueeze(-1)
