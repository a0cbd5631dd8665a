"""Multi-token prediction: an auxiliary head that predicts token t+2 (Gloeckle et al., 2024).

The extra target gives every position a second, harder signal per pass over the data; the head is
used only in training and shares the output embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from scarce.model.norm import rms_norm


class MTPHead(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, h: torch.Tensor, targets: torch.Tensor,
                head_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of predicting targets[:, t+1] (= token t+2) from the final hidden state at t, through
        the model's own head and loss (`GPT.head_loss`: fused with the head on the CPU)."""
        return head_loss(rms_norm(self.proj(h[:, :-1])), targets[:, 1:])
