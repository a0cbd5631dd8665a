"""Weight perturbation at cycle boundaries (hyper-epoch populations): noise that moves a cyclic trajectory out of
the basin its last cycle settled in, so that its next snapshot is a more distinct member. NanoGPT Slowrun's
unlimited record adds Gaussian noise of a fraction of each tensor's std, that fraction decaying over the run."""

from __future__ import annotations

import torch

from scarce.config import OptimConfig


def perturb_scale(cycle: int, cycles: int, cfg: OptimConfig) -> float:
    """The perturbation at the start of cycle `cycle` (1..cycles-1) of a run of `cycles` cycles: linear from
    optim.perturb at the first boundary to optim.perturb_final at the last."""
    if cycles <= 2:
        return cfg.perturb
    return cfg.perturb + (cfg.perturb_final - cfg.perturb) * (cycle - 1) / (cycles - 2)


@torch.no_grad()
def perturb_weights(optimizer: torch.optim.Optimizer, scale: float, seed: int, cycle: int) -> None:
    """Add N(0, (scale * std(W))^2) to every weight W of the optimizer's matrices and embeddings groups (the
    head included; norms, scalars and gates keep their values). The noise is drawn on the CPU from a generator of
    (seed, cycle) alone, so a resumed run, or one on another device, adds the same noise."""
    if scale <= 0:
        return
    generator = torch.Generator().manual_seed(seed * 7_919 + cycle + 1)
    for group in optimizer.param_groups:
        if group["name"] not in ("matrices", "embeddings"):
            continue
        for p in group["params"]:
            _add_noise(p, scale, generator)


def _add_noise(p: torch.Tensor, scale: float, generator: torch.Generator) -> None:
    noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
    p.add_((noise * (scale * p.float().std().item())).to(device=p.device, dtype=p.dtype))
