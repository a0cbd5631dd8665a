"""Learning-rate and weight-decay schedules as multipliers of their peak values, pure functions of the step.

Schedule 'cyclic' repeats a fall from the peak rate to the floor every cycle (Loshchilov & Hutter's warm restarts,
the schedule of snapshot ensembles and of hyper-epoch populations); the weights at each cycle's last step are the
population's members, so that step runs at the floor exactly. Weight decay 'anti' moves against the rate: lowest
while the rate is high and the weights travel, highest while they settle (q0's anti-correlated schedule).
"""

from __future__ import annotations

import math

from scarce.config import OptimConfig


def cycle_length(cfg: OptimConfig, steps_per_epoch: int) -> int:
    """Optimizer steps per cycle of schedule 'cyclic' (0 for every other schedule)."""
    if cfg.schedule != "cyclic":
        return 0
    return cfg.cycle_steps or max(1, round(cfg.cycle_epochs * steps_per_epoch))


def cycle_of(step: int, cycle: int) -> int:
    """The cycle (counted from 0) that optimizer step `step` (0-based) belongs to."""
    return step // cycle if cycle else 0


def lr_multiplier(step: int, total: int, cfg: OptimConfig, cycle: int = 0) -> float:
    """The learning rate of optimizer step `step` (0-based) of `total`, as a fraction of the peak; `cycle`: steps
    per cycle of schedule 'cyclic' (`cycle_length`)."""
    warmup = int(cfg.warmup_frac * total)
    floor = cfg.final_lr_frac
    if cfg.schedule == "cyclic":  # cycles count from step 0; the warmup caps the first of them
        ramp = (step + 1) / warmup if step < warmup else 1.0
        return min(ramp, cyclic_multiplier(step % cycle, cycle, floor, cfg.cycle_shape))
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
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


def cyclic_multiplier(position: int, cycle: int, floor: float, shape: str) -> float:
    """Step `position` (0-based) of a cycle of `cycle` steps: from just below the peak down to `floor` on the
    cycle's last step."""
    progress = (position + 1) / cycle
    if shape == "linear":
        return 1.0 - (1.0 - floor) * progress
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def wd_multiplier(step: int, total: int, cfg: OptimConfig, lr_mult: float) -> float:
    """Weight-decay schedule: constant, following the learning rate, cosine from 1 to 0, or against the rate
    ('anti': wd_floor at the peak rate, 1 at the rate's floor final_lr_frac)."""
    if cfg.wd_schedule == "lr":
        return lr_mult
    if cfg.wd_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step / max(total, 1), 1.0)))
    if cfg.wd_schedule == "anti":
        floor = cfg.final_lr_frac
        height = min(max((lr_mult - floor) / (1 - floor), 0.0), 1.0) if floor < 1 else 0.0
        return 1.0 - (1.0 - cfg.wd_floor) * height
    return 1.0
