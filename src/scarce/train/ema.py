"""Averages of the weights, kept in float32, and their blend with the last weights: an exponential
moving average (EMA), or the uniform average of the last k checkpoints (LAWA).

With scarce data the last weights sit in a noisy spot of a flat valley; an average over the late
trajectory is smoother and generalises better (Polyak averaging; the EMA of the fixed-data records).
Which mix of EMA and last weights is best depends on the run, so the trainer evaluates a few blends
on the select split and keeps the best one. Both averagers expose `shadow` (the average), `blend`
and a state dict that travels in the checkpoint under their `prefix`.
"""

from __future__ import annotations

import torch
from torch import nn

from scarce.config import OptimConfig

BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Weights of the EMA in the blends tried at the end (0 = the last weights)."""


def blend(average: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """alpha * average + (1 - alpha) * weights (state dicts), in the weights' dtypes."""
    return {k: (alpha * average[k] + (1 - alpha) * w.float()).to(w.dtype) for k, w in weights.items()}


class EMA:
    prefix = "ema."
    name = "ema"

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
        return blend(self.shadow, weights, alpha)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        self.shadow = {k: v.float().clone() for k, v in tensors.items()}


class LastK:
    """Uniform average of the weights at the last k snapshots (latest weight averaging, Kaddour 2022;
    the checkpoint averaging of Vaswani et al. 2017). A snapshot is taken every `every` steps (the
    checkpoint cadence by default) and at the last step; the ring of the last k travels in the
    checkpoint, so resume is exact."""

    prefix = "lastk."
    name = "avg"

    def __init__(self, k: int, every: int, total_steps: int):
        self.k, self.every, self.total = k, every, total_steps
        self.ring: list[dict[str, torch.Tensor]] = []

    def due(self, step: int) -> bool:
        """Whether a snapshot is taken after optimizer step `step` (0-based; a pure function of the step)."""
        return (step + 1) % self.every == 0 or step + 1 == self.total

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.ring.append({k: w.detach().float().clone() for k, w in model.state_dict().items()})
        del self.ring[: -self.k]

    @property
    def shadow(self) -> dict[str, torch.Tensor]:
        """The mean of the snapshots in the ring (empty before the first)."""
        if not self.ring:
            return {}
        return {k: torch.stack([snap[k] for snap in self.ring]).mean(0) for k in self.ring[0]}

    def blend(self, weights: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
        """alpha * average + (1 - alpha) * weights (a state dict), in the weights' dtypes."""
        return blend(self.shadow, weights, alpha)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{i}.{k}": v for i, snap in enumerate(self.ring) for k, v in snap.items()}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        ring: dict[int, dict[str, torch.Tensor]] = {}
        for key, v in tensors.items():
            i, name = key.split(".", 1)
            ring.setdefault(int(i), {})[name] = v.float().clone()
        self.ring = [ring[i] for i in sorted(ring)]


def build_averager(cfg: OptimConfig, total_steps: int, checkpoint_every: int) -> EMA | LastK | None:
    """The weight averager a config asks for (at most one: the config refuses both)."""
    if cfg.ema_decay:
        return EMA(cfg, total_steps)
    if cfg.avg_last:
        return LastK(cfg.avg_last, cfg.avg_every or checkpoint_every, total_steps)
    return None
