"""The one place that decides where work runs: the GPU when there is one, else the CPU."""

from __future__ import annotations

import torch

from scarce.errors import UserError

NO_CUDA = "--device cuda but no CUDA device is available"


def pick_device(name: str | None = None, no_cuda: str = NO_CUDA) -> str:
    """`name` `auto` (or unset) is the GPU when there is one, else the CPU; `cuda` without one is a `UserError`
    saying `no_cuda` (which names the setting it came from); anything else is returned as it is."""
    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(no_cuda)
    return name
