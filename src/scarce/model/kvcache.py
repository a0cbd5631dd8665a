"""The key/value cache of incremental decoding: each attention pass keeps the keys and values of the tokens
it has seen, so a new token costs one position of compute instead of a forward over the whole window.

A looped model runs some blocks more than once per token, with other inputs each time, so the cache holds
one slot per *pass* (an entry of `looping.layer_order`), not per block. Keys are stored after everything that
makes them (QK-norm, rotary at their absolute position, the key offset's shift, grouped-query repetition) and
values after the value embedding, so a cached step attends exactly as the full forward does. The key offset
also needs the previous position's unshifted key, kept per slot. Positions cannot pass `model.seq_len`
(the rotary tables and learned positions end there); `sample.py` restarts the cache from the recent tokens
when a generation runs longer.
"""

from __future__ import annotations

import dataclasses

import torch

from scarce.config import ModelConfig
from scarce.errors import UserError

CACHED_FIELDS = {
    # shapes and sizes
    "depth", "aspect_ratio", "head_dim", "width", "vocab_size", "seq_len", "tie_embeddings", "mlp_ratio", "mlp",
    "swiglu_hidden", "norm", "norm_affine", "norm_eps", "bias", "kv_heads",
    # the initial weights only
    "init",
    # inactive at inference (dropout, stochastic depth) or training only (the multi-token head)
    "dropout", "attn_dropout", "drop_path", "mtp_weight", "loop_backprop",
    # knobs local to a token's own position: nothing to cache beyond its keys and values
    "value_embed", "unet_skips", "resid_lambdas", "attn_gate", "xsa", "xsa_learn", "qk_norm", "softcap", "iha",
    # knobs that look at other positions, handled in the cached path
    "position", "rope_base", "rotary_frac", "rope_scaling", "key_offset", "window_pattern", "short_window",
    "loop_layers", "loop_extra", "loop_from",
}
"""The model fields the cached path is known to compute exactly. A field added to ModelConfig later and set
away from its default is refused (`check_cacheable`) until someone teaches the cache about it."""


def check_cacheable(cfg: ModelConfig) -> None:
    """A one-line UserError when the model has a setting the KV cache does not reproduce."""
    default = ModelConfig()
    unknown = [f.name for f in dataclasses.fields(ModelConfig)
               if f.name not in CACHED_FIELDS and getattr(cfg, f.name) != getattr(default, f.name)]
    if unknown:
        raise UserError(f"the KV cache does not support model.{unknown[0]}={getattr(cfg, unknown[0])!r}; "
                        "generation with it cannot be cached (sample with the full forward instead)")


class LayerCache:
    """Keys and values (B, H, L, D) of one attention pass, filled up to `length`."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.prev_key: torch.Tensor | None = None  # the last position's key before the key offset, (B, H, 1, D)

    def append(self, k: torch.Tensor, v: torch.Tensor, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new positions' keys and values at [pos, pos + t); returns all keys and values so far."""
        B, H, t, D = k.shape
        if self.k is None or self.k.dtype != k.dtype:
            self.k = k.new_empty(B, H, self.capacity, D)  # positions past `pos` are never read
            self.v = v.new_empty(B, H, self.capacity, D)
        self.k[:, :, pos:pos + t] = k
        self.v[:, :, pos:pos + t] = v
        return self.k[:, :, :pos + t], self.v[:, :, :pos + t]


class KVCache:
    """One LayerCache per attention pass of a model, and the number of positions already cached (`pos`)."""

    def __init__(self, cfg: ModelConfig, passes: int):
        check_cacheable(cfg)
        self.capacity = cfg.seq_len
        self.layers = [LayerCache(cfg.seq_len) for _ in range(passes)]
        self.pos = 0

    def room(self) -> int:
        """Positions that can still be added."""
        return self.capacity - self.pos

    def advance(self, t: int) -> None:
        self.pos += t

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these batch rows (finished rows dropped from a batch)."""
        for layer in self.layers:
            for name in ("k", "v", "prev_key"):
                value = getattr(layer, name)
                if value is not None:
                    setattr(layer, name, value[rows])
