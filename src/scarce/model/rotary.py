"""Rotary position embedding (Su et al., 2021): rotate pairs of query/key channels by position.

With `frac` < 1 only the highest-frequency fraction of the pairs rotates ("partial" or "half-truncated"
rotary, as in GPT-NeoX and modded-nanogpt): the remaining channels carry content free of position,
which long-range and induction-like heads use.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Rotary(nn.Module):
    """Caches cos/sin tables for up to `max_len` positions; applied to (B, H, T, D) tensors."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0, frac: float = 1.0,
                 scaling: tuple[float, float, float, int] | None = None):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        if scaling is not None:
            inv_freq = llama3_frequencies(inv_freq, *scaling)
        rotating = round(frac * inv_freq.numel())
        inv_freq[rotating:] = 0.0  # frequency 0: cos 1, sin 0, the pair does not move
        t = torch.arange(max_len, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)  # (T, D/2)
        self.register_buffer("cos", freqs.cos()[None, None], persistent=False)  # (1, 1, T, D/2)
        self.register_buffer("sin", freqs.sin()[None, None], persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """x (B, H, T, D) at positions offset .. offset + T - 1 (offset > 0: new tokens after a KV cache's)."""
        T = x.size(-2)
        cos, sin = self.cos[..., offset:offset + T, :].to(x.dtype), self.sin[..., offset:offset + T, :].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)  # halves, as in GPT-NeoX / nanochat
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def llama3_frequencies(inv_freq: torch.Tensor, factor: float, low: float, high: float, original: int) -> torch.Tensor:
    """Llama 3.1's frequency scaling: wavelengths longer than original/low are slowed by `factor`, those
    shorter than original/high are kept, and the band between is interpolated smoothly."""
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    between = (wavelen >= original / high) & (wavelen <= original / low)
    return torch.where(between, (1 - smooth) * scaled / factor + smooth * scaled, scaled)
