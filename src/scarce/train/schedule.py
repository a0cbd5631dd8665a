"""Learning-rate and weight-decay schedules as multipliers of their peak values, pure functions of the step.

Schedule 'cyclic' repeats a fall from the peak rate to the floor every cycle (Loshchilov & Hutter's warm restarts,
the schedule of snapshot ensembles and of hyper-epoch populations); the weights at each cycle's last step are the
population's members, so that step runs at the floor exactly. Weight decay 'anti' moves against the rate: lowest
while the rate is high and the weights travel, highest while they settle (q0's anti-correlated schedule).

SWA cycles (`optim.swa_epochs`, NanoGPT Slowrun's record line 13) are the same cycles laid over the last epochs of
any other schedule, one per epoch, each falling from that schedule's own rate to `swa_floor`; weight decay
'record' (line 20) rises against them, from 0.65 to 1.5 over each.
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


# NanoGPT Slowrun's weight-decay schedule (record 20): held, lowered before the SWA epochs, then a sawtooth in them
RECORD_WD_HOLD = 0.4
RECORD_WD_LOW = 0.65
RECORD_WD_HIGH = 1.5


def swa_start(cfg: OptimConfig, total: int, steps_per_epoch: int) -> int | None:
    """The first step of the SWA epochs (the last `swa_epochs` epochs of `total` steps), or None without them."""
    return total - cfg.swa_epochs * steps_per_epoch if cfg.swa_epochs else None


def lr_multiplier(step: int, total: int, cfg: OptimConfig, cycle: int = 0, epoch: int = 0) -> float:
    """The learning rate of optimizer step `step` (0-based) of `total`, as a fraction of the peak; `cycle`: steps
    per cycle of schedule 'cyclic' (`cycle_length`); `epoch`: steps per epoch (for the SWA cycles)."""
    base = schedule_multiplier(step, total, cfg, cycle)
    start = swa_start(cfg, total, epoch)
    if start is None or step < start:
        return base
    # the record's SWA: a cosine from the schedule's own rate (at least the floor) down to the floor, every epoch
    floor = cfg.swa_floor
    return floor + (max(base, floor) - floor) * cycle_fall((step - start) % epoch, epoch, "cosine")


def schedule_multiplier(step: int, total: int, cfg: OptimConfig, cycle: int = 0) -> float:
    """`lr_multiplier` without the SWA cycles."""
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
    progress = min((step - start + 1) / max(warmdown, 1), 1.0)
    if cfg.warmdown_power != 1:  # the record's square-root warmdown: the share left, shaped
        return floor + (1.0 - floor) * (1.0 - progress) ** cfg.warmdown_power
    return 1.0 - (1.0 - floor) * progress


def cycle_fall(position: int, cycle: int, shape: str) -> float:
    """Step `position` (0-based) of a cycle of `cycle` steps as the share of the cycle's height left: from just
    below 1 down to 0 on the cycle's last step, along a cosine or a line."""
    progress = (position + 1) / cycle
    if shape == "linear":
        return 1.0 - progress
    return 0.5 * (1 + math.cos(math.pi * progress))


def cyclic_multiplier(position: int, cycle: int, floor: float, shape: str) -> float:
    """Step `position` (0-based) of a cycle of `cycle` steps: from just below the peak down to `floor` on the
    cycle's last step."""
    if shape == "linear":  # in this form, not through cycle_fall: earlier runs' rates stay the same bits
        return 1.0 - (1.0 - floor) * ((position + 1) / cycle)
    return floor + (1 - floor) * cycle_fall(position, cycle, shape)  # halving is exact: the same bits as before


def wd_multiplier(step: int, total: int, cfg: OptimConfig, lr_mult: float, epoch: int = 0) -> float:
    """Weight-decay schedule: constant, following the learning rate, cosine from 1 to 0, against the rate
    ('anti': wd_floor at the peak rate, 1 at the rate's floor final_lr_frac) or the record's ('record'; `epoch`:
    steps per epoch, for its SWA epochs)."""
    if cfg.wd_schedule == "record":
        return record_wd(step, total, swa_start(cfg, total, epoch), epoch)
    if cfg.wd_schedule == "lr":
        return lr_mult
    if cfg.wd_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step / max(total, 1), 1.0)))
    if cfg.wd_schedule == "anti":
        floor = cfg.final_lr_frac
        height = min(max((lr_mult - floor) / (1 - floor), 0.0), 1.0) if floor < 1 else 0.0
        return 1.0 - (1.0 - cfg.wd_floor) * height
    return 1.0


def record_wd(step: int, total: int, start: int | None, epoch: int) -> float:
    """Weight decay 'record': 1 until 40% of the steps, linearly down to 0.65 at the SWA start (`start`, or the end
    without SWA), then in each SWA epoch linearly from 0.65 on its first step towards 1.5, against its cycle's
    falling rate (the record's own steps: 0.65 + 0.85 x position / epoch)."""
    if start is not None and step >= start:
        return RECORD_WD_LOW + (RECORD_WD_HIGH - RECORD_WD_LOW) * ((step - start) % epoch) / epoch
    hold, end = RECORD_WD_HOLD * total, total if start is None else start
    lowered = min(max((step - hold) / max(end - hold, 1e-6), 0.0), 1.0)
    return 1.0 - (1.0 - RECORD_WD_LOW) * lowered
