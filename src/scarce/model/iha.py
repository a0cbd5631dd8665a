"""Interleaved Head Attention, IHA (arXiv 2602.21371; NanoGPT Slowrun's 1-hour record line 17): learned mixing
across heads of the queries, keys and values.

Each head's query (key, value) becomes a learned combination of every head's: q_h = sum_m M_q[h, m] q_m, with one
square matrix per projection (M_k, M_v over the key/value heads under grouped-query attention). The mix is linear
in the projection, so it is folded into the projection's weight, W'[h] = sum_m M[h, m] W[m], an (N x N) by
(N x D·C) product that costs little beside the (B·T x C) by (C x N·D) projection, as the record does. The matrices
start at the identity, so a model starts as plain attention; they are read by every position alike, so the KV cache
needs nothing new (it stores the mixed keys and values).
"""

from __future__ import annotations

import torch
from torch import nn


class HeadMix(nn.Module):
    def __init__(self, n_heads: int, n_kv: int):
        super().__init__()
        self.q = nn.Parameter(torch.eye(n_heads))
        self.k = nn.Parameter(torch.eye(n_kv))
        self.v = nn.Parameter(torch.eye(n_kv))

    def init_weights(self) -> None:
        for m in (self.q, self.k, self.v):
            nn.init.eye_(m)

    def fold(self, weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The fused q/k/v projection's weight ((H + 2KV)·D, C) and bias with the heads mixed: row block h of the
        result is sum_m M[h, m] times row block m (within q, within k, within v)."""
        mix = torch.block_diag(self.q, self.k, self.v)  # (N, N), N = H + 2 KV
        n = mix.size(0)
        weight = (mix @ weight.reshape(n, -1)).view_as(weight)  # (N·D, C)
        if bias is not None:
            bias = (mix @ bias.view(n, -1)).view_as(bias)
        return weight, bias
