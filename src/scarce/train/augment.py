"""Data augmentation for training many epochs on the same text (`train.augment_replace`).

Random token replacement is the best single method of arXiv 2606.16246 for hundreds of epochs: each input token is
swapped, with a small probability, for a uniformly random token id, while the targets stay the true next tokens, so
the model learns to predict from a context it cannot trust token by token and the repeated windows differ each time.
The draw is a pure function of (seed, step, micro-batch, rank), so a resumed run replaces the same tokens.
"""

from __future__ import annotations

import numpy as np
import torch

AUGMENT_STREAM = 29
"""Last word of the draw's seed: keeps it apart from the loader's and the mix's streams of the same (seed, step)."""


def replace_tokens(x: torch.Tensor, rate: float, vocab_size: int, key: tuple[int, ...]) -> torch.Tensor:
    """A copy of the inputs x (B, T) with each token replaced by a uniformly random id in [0, vocab_size) with
    probability `rate`; `key` seeds the draw. A copy: the loader's inputs and targets share their memory."""
    rng = np.random.default_rng([*key, AUGMENT_STREAM])
    replaced = torch.from_numpy(rng.random(tuple(x.shape)) < rate)  # (B, T)
    out = x.clone()
    out[replaced] = torch.from_numpy(rng.integers(vocab_size, size=int(replaced.sum()))).to(x.dtype)
    return out
