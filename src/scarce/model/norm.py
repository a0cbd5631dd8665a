"""RMSNorm without a learned gain (as in nanochat / modded-nanogpt): fewer parameters, same quality."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))
