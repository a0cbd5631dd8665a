"""Looped transformer: replay a middle range of layers more times, switched on partway through training.

Replaying layers [a, b) buys depth without parameters, which pays when data, not parameters, is the
limit (NanoGPT Slowrun's layer duplication; Geiping et al. 2025 on recurrent depth). The last layers
are never looped so the readout stays a single pass.
"""

from __future__ import annotations

from scarce.config import ModelConfig


def layer_order(depth: int, loop_range: tuple[int, int] | None, extra: int) -> list[int]:
    """The block indices in execution order: 0..b-1, then [a, b) `extra` more times, then b..depth-1."""
    order = list(range(depth))
    if loop_range is None or extra == 0:
        return order
    a, b = loop_range
    return order[:b] + list(range(a, b)) * extra + order[b:]


def loop_switch_step(cfg: ModelConfig, total_steps: int) -> int | None:
    """The first step trained with the replays, or None when looping is off."""
    if cfg.loop_range is None:
        return None
    return int(cfg.loop_from * total_steps)


def loops_at(cfg: ModelConfig, step: int, total_steps: int) -> int:
    """Extra passes at `step`: a pure function of the step, so a resumed run loops exactly as before."""
    switch = loop_switch_step(cfg, total_steps)
    return cfg.loop_extra if switch is not None and step >= switch else 0
