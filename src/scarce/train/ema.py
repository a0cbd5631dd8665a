"""Exponential moving average of the weights, kept in float32, and its blend with the last weights.

With scarce data the last weights sit in a noisy spot of a flat valley; an average over the late
trajectory is smoother and generalises better (Polyak averaging; the EMA of the fixed-data records).
Which mix of EMA and last weights is best depends on the run, so the trainer evaluates a few blends
on the select split and keeps the best one.
"""

from __future__ import annotations

import torch
from torch import nn

from scarce.config import OptimConfig

BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Weights of the EMA in the blends tried at the end (0 = the last weights)."""


class EMA:
    def __init__(self, cfg: OptimConfig, total_steps: int):
        self.decay, self.every = cfg.ema_decay, cfg.ema_every
        self.start = int(cfg.ema_start * total_steps)
        self.shadow: dict[str, torch.Tensor] = {}

    def due(self, step: int) -> bool:
        """Whether the EMA updates after optimizer step `step` (a pure function of the step)."""
        return step >= self.start and (step - self.start) % self.every == 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """ema = decay * ema + (1 - decay) * w; the first update copies the weights."""
        for name, w in model.state_dict().items():
            if name not in self.shadow:
                self.shadow[name] = w.detach().float().clone()
            else:
                self.shadow[name].lerp_(w.detach().float(), 1 - self.decay)

    def blend(self, weights: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
        """alpha * EMA + (1 - alpha) * weights (a state dict), in the weights' dtypes."""
        return {k: (alpha * self.shadow[k] + (1 - alpha) * w.float()).to(w.dtype) for k, w in weights.items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        self.shadow = {k: v.float().clone() for k, v in tensors.items()}
