"""The KV cache: logits of cached decoding equal the full forward's, knob by knob (weights perturbed away from
the zero-initialised knobs' identity so that each knob acts), and settings it cannot reproduce are refused."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from scarce.config import ModelConfig, slowrun_overrides
from scarce.errors import UserError
from scarce.model.kvcache import CACHED_FIELDS, check_cacheable

KNOBS = {
    "baseline": {},
    "partial_rotary": {"rotary_frac": 0.5},
    "rope_scaling": {"rope_scaling": "llama3:8:1:4:16"},
    "key_offset": {"key_offset": "all"},
    "windows": {"window_pattern": "SSL", "short_window": 5},
    "xsa": {"xsa": True},
    "value_embed": {"value_embed": "alt"},
    "unet_skips": {"unet_skips": True},
    "resid_lambdas": {"resid_lambdas": True},
    "looping": {"loop_layers": "1:3", "loop_extra": 2},
    "attn_gate": {"attn_gate": True},
    "softcap": {"softcap": 3.0},
    "qk_norm": {"qk_norm": True},
    "swiglu": {"mlp": "swiglu", "swiglu_hidden": 96},
    "gqa": {"kv_heads": 2},
    "drop_path": {"drop_path": 0.5},  # inactive at evaluation
    "record_init": {"init": "record"},
    "iha": {"iha": "all", "kv_heads": 2},
    "xsa_learn": {"xsa": True, "xsa_learn": True},
    "truncated_loop": {"loop_layers": "0:3", "loop_backprop": "last"},  # training only
    "gpt2_shape": {"position": "learned", "norm": "layer", "norm_affine": True, "bias": True, "mlp": "gelu"},
    "slowrun_stack": {k.split(".", 1)[1]: v for k, v in slowrun_overrides().items() if k.startswith("model.")},
}


def perturbed(build, **kw):
    model = build(**kw)
    with torch.no_grad():  # knobs start as the identity (zero gates, unit lambdas): move every parameter
        g = torch.Generator().manual_seed(3)
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    if model.cfg.loop_range is not None:
        model.loops = model.cfg.loop_extra
    return model.eval()


@torch.no_grad()
def cached_logits(model, tokens, chunks):
    """Logits at every position, computed chunk by chunk through one cache."""
    cache, out, start = model.new_cache(), [], 0
    for size in chunks:
        h = model.hidden(tokens[:, start:start + size], cache)
        out.append(model.unembed(h))
        start += size
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("knob", list(KNOBS), ids=list(KNOBS))
def test_cached_logits_equal_the_full_forward(build, tokens, knob):
    model = perturbed(build, **KNOBS[knob])
    with torch.no_grad():
        full = model(tokens)  # (B, T, V)
    for chunks in ([1] * 32, [7, 1, 1, 9, 14], [32]):
        torch.testing.assert_close(cached_logits(model, tokens, chunks), full, rtol=1e-4, atol=1e-4)


def test_decode_returns_the_last_positions_logits(build, tokens):
    model = perturbed(build, value_embed="all", key_offset="all")
    cache = model.new_cache()
    with torch.no_grad():
        first = model.decode(tokens[:, :10], cache)
        second = model.decode(tokens[:, 10:11], cache)
        full = model(tokens[:, :11])
    assert cache.pos == 11
    torch.testing.assert_close(first, full[:, 9], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(second, full[:, 10], rtol=1e-4, atol=1e-4)


def test_every_model_field_is_known_to_the_cache():
    """A knob added to ModelConfig must be taught to the cache (or stay refused): this lists the gap."""
    assert {f.name for f in dataclasses.fields(ModelConfig)} <= CACHED_FIELDS


def test_unknown_settings_are_refused(monkeypatch):
    import scarce.model.kvcache as kv

    monkeypatch.setattr(kv, "CACHED_FIELDS", CACHED_FIELDS - {"xsa"})
    check_cacheable(ModelConfig())  # default: fine
    with pytest.raises(UserError, match="model.xsa"):
        kv.check_cacheable(ModelConfig(xsa=True))


def test_a_full_cache_is_an_error(build, tokens):
    model = perturbed(build)
    cache = model.new_cache()
    model.hidden(tokens, cache)
    with pytest.raises(AssertionError):
        model.hidden(tokens[:, :1], cache)
