"""Fixtures for the model tests: tiny GPTs built from ModelConfig overrides, on one torch thread."""

from __future__ import annotations

import pytest
import torch

from scarce.config import ModelConfig
from scarce.model.gpt import GPT

torch.set_num_threads(1)


def _build(seed: int = 0, **kw) -> GPT:
    base = {"depth": 4, "aspect_ratio": 16, "head_dim": 16, "seq_len": 32, "vocab_size": 97}
    base.update(kw)
    torch.manual_seed(seed)
    return GPT(ModelConfig(**base))


@pytest.fixture
def build():
    """build(seed=0, **model_fields) -> GPT (depth 4, width 64, 4 heads, T 32, vocab 97)."""
    return _build


@pytest.fixture
def tokens():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 97, (2, 32), generator=g)
