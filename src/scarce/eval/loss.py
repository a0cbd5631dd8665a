"""Loss on a split in nats per token and bits per byte.

Bits per byte divides the total negative log-likelihood (in bits) by the UTF-8 bytes of the
predicted tokens, which makes losses comparable across tokenizers. Every target counts, the
end-of-text token too (it has zero bytes but must be predicted to encode the text).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from scarce.data.loader import eval_batches


@torch.no_grad()
def token_logprobs(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probability of each target token: (B, T) float32."""
    logits = model(inputs).float()
    return -F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)


@torch.no_grad()
def evaluate(model, tokens: np.ndarray, token_bytes: np.ndarray, seq_len: int, batch_size: int = 16,
             max_tokens: int = 0, device: str = "cpu", autocast=None, windows: bool = False) -> dict:
    """Mean loss (nats/token) and bits per byte of `model` on a split; with `windows`, also the summed NLL of
    each window of seq_len targets (`window_nll`, float64), the numbers paired bootstraps resample."""
    was_training = model.training
    model.eval()
    nll, n, nbytes, per_window = 0.0, 0, 0, []
    tb = torch.from_numpy(token_bytes.astype(np.int64))
    for x, y in eval_batches(tokens, seq_len, batch_size, max_tokens):
        with autocast() if autocast else _null():
            lp = token_logprobs(model, x.to(device), y.to(device))
        lp = lp.double()
        nll -= lp.sum().item()
        if windows:
            per_window.append(-lp.sum(1).cpu().numpy())
        n += y.numel()
        nbytes += int(tb[y].sum())
    model.train(was_training)
    out = {"loss": nll / n, "bpb": nll / (math.log(2) * max(nbytes, 1)), "tokens": n}
    if windows:
        out["window_nll"] = np.concatenate(per_window)
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
