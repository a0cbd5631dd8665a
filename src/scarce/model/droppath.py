"""Stochastic depth (drop path; Huang et al. 2016; NanoGPT Slowrun's record line 15): in training, skip a block for
some sequences, more often the deeper it sits (layer i of L with probability p * i / (L - 1)), so the early layers
learn to serve every depth and the model trains as an ensemble of shallower ones. A kept block's update is scaled by
1 / keep, so its expectation is the full block's and evaluation runs every block unscaled.
"""

from __future__ import annotations

import torch


def drop_prob(layer: int, depth: int, p: float) -> float:
    """The probability that block `layer` of `depth` is skipped for a sequence: linear from 0 at the first block to
    p at the last."""
    return p * layer / max(depth - 1, 1)


def drop_path(x: torch.Tensor, out: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """A block's output `out` from its input x (B, T, d), with the block skipped for each sequence with
    probability p. The draw comes from the global generator, which the trainer reseeds every step."""
    if not training or not p:
        return out
    keep = (torch.rand(x.size(0), 1, 1, device=x.device) >= p).to(x.dtype)  # (B, 1, 1)
    return x + (out - x) * (keep / (1 - p))
