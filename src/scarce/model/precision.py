"""Inference precision: bf16 autocast on CUDA, as in training (`train.precision` 'auto'); fp32 on the CPU,
which has no bf16 hardware (bf16 there is ~17x slower)."""

from __future__ import annotations

from contextlib import nullcontext

import torch


def inference_autocast(device: str | torch.device):
    """The context a model's forward runs in for evaluation, scoring and sampling on `device`."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if str(device).startswith("cuda") else nullcontext()
