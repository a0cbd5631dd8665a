"""Data augmentation for training many epochs on the same text (`train.augment_replace`, `train.augment_offset`).

Random token replacement is the best single method of arXiv 2606.16246 for hundreds of epochs: each input token is
swapped, with a small probability, for a uniformly random token id, while the targets stay the true next tokens, so
the model learns to predict from a context it cannot trust token by token and the repeated windows differ each time.
Target offsets, the paper's third family, combine with it: a share of the sequences predict a later token than the
next (x_{t+1+k}). The paper marks such a sequence with a token naming k; a store's vocabulary has no such token, so
here the offset is unmarked. Each draw is a pure function of (seed, step, micro-batch, rank), so a resumed run
draws the same.
"""

from __future__ import annotations

import numpy as np
import torch

AUGMENT_STREAM = 29
"""Last word of the draw's seed: keeps it apart from the loader's and the mix's streams of the same (seed, step)."""
OFFSET_STREAM = 31
"""The same for the target offsets' draw."""


def replace_tokens(x: torch.Tensor, rate: float, vocab_size: int, key: tuple[int, ...]) -> torch.Tensor:
    """A copy of the inputs x (B, T) with each token replaced by a uniformly random id in [0, vocab_size) with
    probability `rate`; `key` seeds the draw. A copy: the loader's inputs and targets share their memory."""
    rng = np.random.default_rng([*key, AUGMENT_STREAM])
    replaced = torch.from_numpy(rng.random(tuple(x.shape)) < rate)  # (B, T)
    out = x.clone()
    out[replaced] = torch.from_numpy(rng.integers(vocab_size, size=int(replaced.sum()))).to(x.dtype)
    return out


def offset_targets(y: torch.Tensor, share: float, largest: int, key: tuple[int, ...]) -> torch.Tensor:
    """Targets y (B, T) (y[:, t] is token t+1) where each sequence, with probability `share`, predicts token t+1+k
    instead, k uniform in 1..largest; its last k positions keep their own target (the window ends there)."""
    rng = np.random.default_rng([*key, OFFSET_STREAM])
    B, T = y.shape
    chosen, k = rng.random(B) < share, rng.integers(1, largest + 1, size=B)
    shift = torch.from_numpy(np.where(chosen, k, 0))[:, None]  # (B, 1)
    t = torch.arange(T)[None, :]  # (1, T)
    source = torch.where(t + shift < T, t + shift, t)  # (B, T)
    return y.gather(1, source.to(y.device))
