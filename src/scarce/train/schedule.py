"""Learning-rate schedules as multipliers of the peak rate, a pure function of the step."""

from __future__ import annotations

import math

from scarce.config import OptimConfig


def lr_multiplier(step: int, total: int, cfg: OptimConfig) -> float:
    warmup = int(cfg.warmup_frac * total)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    floor = cfg.final_lr_frac
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(total - warmup, 1)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    # wsd: warmup, stable, then linear warmdown to the floor over the last warmdown_frac of the steps
    warmdown = int(cfg.warmdown_frac * total)
    start = total - warmdown
    if step < start:
        return 1.0
    progress = (step - start + 1) / max(warmdown, 1)
    return 1.0 - (1.0 - floor) * min(progress, 1.0)
