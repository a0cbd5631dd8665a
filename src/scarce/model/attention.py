"""Causal self-attention with rotary positions (none when the model learns absolute ones), through
`F.scaled_dot_product_attention`; grouped-query attention when model.kv_heads is set (Llama).

Optional per-layer pieces, each off by default: QK-norm, value embeddings, key offset, a sliding
window, exclusive self attention, a per-head output gate and interleaved head attention (heads mixed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scarce.config import ModelConfig
from scarce.model.gates import HeadGate
from scarce.model.iha import HeadMix
from scarce.model.kvcache import LayerCache
from scarce.model.norm import rms_norm
from scarce.model.rotary import Rotary
from scarce.model.value_embed import ValueEmbedding


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, rotary: Rotary | None, layer: int = 0):
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.n_kv, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.qkv = nn.Linear(d, (self.n_heads + 2 * self.n_kv) * self.head_dim, bias=cfg.bias)
        self.proj = nn.Linear(d, d, bias=cfg.bias)
        self.rotary = rotary
        self.attn_dropout = cfg.attn_dropout
        self.qk_norm, self.xsa = cfg.qk_norm, cfg.xsa
        self.key_offset = layer in cfg.layers("key_offset")
        self.window = layer_window(cfg, layer)
        self.ve = ValueEmbedding(d, cfg.n_heads) if layer in cfg.layers("value_embed") else None
        self.gate = HeadGate(d, cfg.n_heads) if cfg.attn_gate else None
        self.mix = HeadMix(cfg.n_heads, cfg.n_kv_heads) if layer in cfg.layers("iha") else None
        self.xsa_scale = XSAScale(cfg.n_heads) if cfg.xsa_learn else None

    def forward(self, x: torch.Tensor, x0: torch.Tensor | None = None, cache: LayerCache | None = None,
                pos: int = 0) -> torch.Tensor:
        """x (B, T, d) at positions pos .. pos + T - 1; with a cache, the keys and values of the earlier
        positions come from it and the new ones are added to it."""
        B, T, C = x.shape
        H, KV = self.n_heads, self.n_kv
        if self.mix is None:
            qkv = self.qkv(x).view(B, T, H + 2 * KV, self.head_dim)
        else:  # interleaved head attention: heads mixed through the projection's weight
            qkv = F.linear(x, *self.mix.fold(self.qkv.weight, self.qkv.bias)).view(B, T, H + 2 * KV, self.head_dim)
        if self.qk_norm:  # queries and keys normed in one call, on the rows as the matmul wrote them
            q, k = rms_norm(qkv[:, :, :H + KV]).transpose(1, 2).split((H, KV), dim=1)
            v = qkv[:, :, H + KV:].transpose(1, 2)
        else:
            q, k, v = qkv.transpose(1, 2).split((H, KV, KV), dim=1)  # (B, H, T, D), (B, KV, T, D) x 2
        if KV < H:  # grouped-query attention: each key/value head serves H/KV consecutive query heads
            k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        if self.ve is not None:
            v = v + self.ve(x, x0)
        if self.rotary is not None:
            q, k = self.rotary(q, pos), self.rotary(k, pos)
        if self.key_offset:
            prev = None if cache is None else cache.prev_key
            if cache is not None:
                cache.prev_key = k[..., -1:, :]
            k = shift_keys(k, prev)
        p = self.attn_dropout if self.training else 0.0
        if cache is not None:
            keys, values = cache.append(k, v, pos)  # (B, H, pos + T, D)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=cached_mask(T, pos, self.window, x.device))
        elif self.window:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=window_mask(T, self.window, x.device), dropout_p=p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)  # (B, H, T, D)
        if self.xsa:
            y = exclude_self(y, v) if self.xsa_scale is None else exclude_self(y, v, self.xsa_scale())
        if self.gate is not None:
            y = y * self.gate(x)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.proj(y)


def exclude_self(y: torch.Tensor, v: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Exclusive self attention: remove the component of each head's output along the token's own
    value, so attention carries only what the context adds (the token itself flows on the residual);
    with `scale` (H, 1, 1), only that share of it per head (learnable XSA)."""
    vn = F.normalize(v, dim=-1)  # (B, H, T, D)
    along = (y * vn).sum(-1, keepdim=True)  # (B, H, T, 1)
    return y - (along if scale is None else along * scale) * vn


class XSAScale(nn.Module):
    """Learnable XSA (NanoGPT Slowrun's tiny track, record 11): the share tanh(alpha) of the self component that each
    head removes, alpha learned from 0, so a model starts as plain attention and learns how exclusive each head is."""

    def __init__(self, n_heads: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(n_heads))

    def init_weights(self) -> None:
        nn.init.zeros_(self.alpha)

    def forward(self) -> torch.Tensor:
        return torch.tanh(self.alpha).view(-1, 1, 1)  # (H, 1, 1)


def shift_keys(k: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
    """Key offset: the low-frequency half of the rotary pairs of each key takes the previous token's
    values, so a query matching token t-1's content attends to token t: a one-layer induction head
    (modded-nanogpt). Position 0 keeps its own key; `prev` (B, H, 1, D) is the key of the position before
    k's first one when k continues a cached sequence."""
    D = k.size(-1)
    j = torch.arange(D, device=k.device) % (D // 2)  # pair index of each channel (halves layout)
    first = k[..., :1, :] if prev is None else prev
    shifted = torch.cat((first, k[..., :-1, :]), dim=-2)  # (B, H, T, D), one position later
    return torch.where(j >= D // 4, shifted, k)


def layer_window(cfg: ModelConfig, layer: int) -> int:
    """Sliding-window width of a layer (0 = full causal); the pattern cycles and the last layer is full."""
    if not cfg.window_pattern or layer == cfg.depth - 1:
        return 0
    if cfg.window_pattern[layer % len(cfg.window_pattern)] == "L":
        return 0
    return cfg.short_window or cfg.seq_len // 2


def window_mask(T: int, window: int, device) -> torch.Tensor:
    """(T, T) boolean mask: query i sees keys i-window+1 .. i."""
    i = torch.arange(T, device=device)
    delta = i[:, None] - i[None, :]
    return (delta >= 0) & (delta < window)


def cached_mask(T: int, pos: int, window: int, device) -> torch.Tensor | None:
    """(T, pos + T) boolean mask of new queries at pos .. pos + T - 1 over every cached and new key: causal,
    and within the sliding window when there is one; None when every key is visible (one new token, no window)."""
    if T == 1 and not window:
        return None
    i = torch.arange(pos, pos + T, device=device)[:, None]
    delta = i - torch.arange(pos + T, device=device)[None, :]
    return (delta >= 0) & (delta < window) if window else delta >= 0
