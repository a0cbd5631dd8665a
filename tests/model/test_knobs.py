"""The math of each architecture knob (docs/architecture.md), on tiny models."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from scarce.config import ModelConfig, apply_overrides, get_preset, slowrun_overrides
from scarce.model.attention import CausalSelfAttention, exclude_self, layer_window, shift_keys, window_mask
from scarce.model.gates import HeadGate
from scarce.model.gpt import flops_per_token, param_counts
from scarce.model.looping import layer_order, loops_at
from scarce.model.mlp import SwiGLU
from scarce.model.rotary import Rotary
from scarce.model.value_embed import ValueEmbedding

ZERO_AT_INIT = [{"value_embed": "all"}, {"unet_skips": True}, {"resid_lambdas": True}, {"attn_gate": True},
                {"value_embed": "alt", "unet_skips": True, "resid_lambdas": True, "attn_gate": True}]


@pytest.mark.parametrize("knob", ZERO_AT_INIT, ids=lambda k: "+".join(k))
def test_zero_initialised_knobs_start_as_the_baseline(build, tokens, knob):
    base, model = build(), build(**knob)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert missing and not unexpected  # only the knob's own parameters keep their init
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), base(tokens), rtol=0, atol=0)


def test_baseline_defaults_are_unchanged(build, tokens):
    m = build()
    assert m.skips is None and m.lambdas is None and m.mtp is None and m.loops == 0
    assert all(b.attn.ve is None and b.attn.gate is None and not b.attn.window for b in m.blocks)


def test_swiglu_hidden_size_and_math():
    assert ModelConfig(width=128, mlp="swiglu").mlp_hidden == 512  # 256 * ceil(8 * 128 / 3 / 256)
    assert ModelConfig(width=768, mlp="swiglu").mlp_hidden == 2048
    assert ModelConfig(width=128, mlp="swiglu", swiglu_hidden=100).mlp_hidden == 100
    torch.manual_seed(0)
    mlp = SwiGLU(ModelConfig(width=32, head_dim=16, mlp="swiglu", swiglu_hidden=48))
    x = torch.randn(3, 32)
    expected = (F.silu(x @ mlp.gate.weight.T) * (x @ mlp.fc.weight.T)) @ mlp.proj.weight.T
    torch.testing.assert_close(mlp(x), expected)


def test_value_embedding_is_a_gated_projection_of_x0():
    torch.manual_seed(0)
    ve = ValueEmbedding(32, 2)
    torch.nn.init.normal_(ve.proj.weight)
    torch.nn.init.normal_(ve.gate.weight)
    x, x0 = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
    gate = 2 * torch.sigmoid(x[..., :12] @ ve.gate.weight.T)  # (B, T, H)
    expected = gate[..., None] * (x0 @ ve.proj.weight.T).view(2, 5, 2, 16)  # (B, T, H, D)
    torch.testing.assert_close(ve(x, x0), expected.transpose(1, 2))


def test_value_embed_layer_selection(build):
    m = build(value_embed="alt")
    assert [b.attn.ve is not None for b in m.blocks] == [False, True, False, True]  # last layer included
    m = build(value_embed="0,2")
    assert [b.attn.ve is not None for b in m.blocks] == [True, False, True, False]
    with pytest.raises(ValueError, match="model.value_embed"):
        ModelConfig(depth=4, value_embed="7")


def test_unet_skips_add_mirrored_outputs(build, tokens):
    m = build(unet_skips=True).eval()
    with torch.no_grad():
        m.skips.weight.copy_(torch.tensor([0.5, -2.0]))
        x0 = x = m.embed(tokens)
        outs = []
        for i, block in enumerate(m.blocks):
            if i == 2:
                x = x - 2.0 * outs[1]
            if i == 3:
                x = x + 0.5 * outs[0]
            x = block(x, x0)
            outs.append(x)
        torch.testing.assert_close(m.hidden(tokens), F.rms_norm(x, (x.size(-1),)))


def test_residual_lambdas_mix_the_stream_and_x0(build, tokens):
    m = build(resid_lambdas=True).eval()
    with torch.no_grad():
        m.lambdas.resid.copy_(torch.tensor([1.0, 0.5, 2.0, 1.0]))
        m.lambdas.x0.copy_(torch.tensor([0.0, 0.3, 0.0, -1.0]))
        x0 = x = m.embed(tokens)
        for i, block in enumerate(m.blocks):
            x = block(m.lambdas.resid[i] * x + m.lambdas.x0[i] * x0, x0)
        torch.testing.assert_close(m.hidden(tokens), F.rms_norm(x, (x.size(-1),)))


def test_head_gate_is_one_at_init_and_a_sigmoid_of_few_channels():
    g = HeadGate(64, 4)
    x = torch.randn(2, 7, 64)
    assert torch.equal(g(x), torch.ones(2, 4, 7, 1))
    torch.nn.init.normal_(g.weight)
    x2 = x.clone()
    x2[..., 12:] = 0  # only the first 12 channels matter
    torch.testing.assert_close(g(x), g(x2))
    torch.testing.assert_close(g(x), (2 * torch.sigmoid(x[..., :12] @ g.weight.T)).transpose(1, 2)[..., None])


def test_xsa_output_is_orthogonal_to_own_value():
    y, v = torch.randn(2, 4, 9, 16), torch.randn(2, 4, 9, 16)
    out = exclude_self(y, v)
    cos = (out * F.normalize(v, dim=-1)).sum(-1)
    assert cos.abs().max() < 1e-5
    residual = y - out  # what was removed is parallel to v
    torch.testing.assert_close(F.normalize(residual, dim=-1).abs(), F.normalize(v, dim=-1).abs(), atol=1e-4, rtol=0)


def test_xsa_in_the_attention_module(build, tokens, monkeypatch):
    m = build(xsa=True).eval()
    seen = []
    import scarce.model.attention as attention

    def spy(y, v):
        out = exclude_self(y, v)
        seen.append((out * F.normalize(v, dim=-1)).sum(-1).abs().max().item())
        return out

    monkeypatch.setattr(attention, "exclude_self", spy)
    with torch.no_grad():
        m(tokens)
    assert len(seen) == 4 and max(seen) < 1e-5


def test_partial_rotary_leaves_the_low_frequency_pairs_in_place():
    x = torch.randn(1, 2, 10, 16)
    full, half = Rotary(16, 10), Rotary(16, 10, frac=0.5)
    out = half(x)
    still = [j for j in range(16) if j % 8 >= 4]  # pairs 4..7 of 8 (halves layout: channels j and j + 8)
    torch.testing.assert_close(out[..., still], x[..., still], rtol=0, atol=0)
    moving = [j for j in range(16) if j % 8 < 4]
    torch.testing.assert_close(out[..., moving], full(x)[..., moving], rtol=0, atol=0)


def test_key_offset_shifts_the_low_frequency_half_by_one_position():
    k = torch.randn(2, 3, 6, 16)
    out = shift_keys(k)
    shifted = [j for j in range(16) if j % 8 >= 4]
    kept = [j for j in range(16) if j % 8 < 4]
    torch.testing.assert_close(out[..., 1:, shifted], k[..., :-1, shifted], rtol=0, atol=0)
    torch.testing.assert_close(out[..., kept], k[..., kept], rtol=0, atol=0)
    torch.testing.assert_close(out[..., 0, :], k[..., 0, :], rtol=0, atol=0)


def test_key_offset_keeps_the_model_causal(build, tokens):
    m = build(key_offset="all", rotary_frac=0.5).eval()
    changed = tokens.clone()
    changed[:, 20:] = (changed[:, 20:] + 1) % 97
    with torch.no_grad():
        torch.testing.assert_close(m(tokens)[:, :20], m(changed)[:, :20])


def test_qk_norm_makes_attention_invariant_to_the_scale_of_q_and_k(build, tokens):
    m = build(qk_norm=True).eval()
    with torch.no_grad():
        before = m(tokens)
        for b in m.blocks:
            b.attn.qkv.weight[: 2 * 64] *= 7.0  # the q and k rows
        torch.testing.assert_close(m(tokens), before, atol=1e-5, rtol=1e-5)


def test_softcap_bounds_logits(build, tokens):
    base, capped = build(), build(softcap=2.0)
    capped.load_state_dict(base.state_dict())
    with torch.no_grad():
        torch.nn.init.normal_(base.embed.weight, std=1.0)
        capped.embed.weight.copy_(base.embed.weight)
        raw, out = base(tokens), capped(tokens)
    assert out.abs().max() <= 2.0 < raw.abs().max()
    torch.testing.assert_close(out, 2.0 * torch.tanh(raw / 2.0))


def test_fused_softcap_matches_the_plain_expression_and_its_gradient():
    from scarce.model.softcap import capped_linear, softcap

    x = (torch.randn(3, 5, 7, dtype=torch.float64) * 20).requires_grad_()
    torch.testing.assert_close(softcap(x, 15.0), 15.0 * torch.tanh(x / 15.0))
    assert torch.autograd.gradcheck(lambda t: softcap(t, 15.0), (x,))
    h = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(7, 4, dtype=torch.float64) * 10).requires_grad_()
    torch.testing.assert_close(capped_linear(h, w, 2.0), 2.0 * torch.tanh(F.linear(h, w) / 2.0))
    assert torch.autograd.gradcheck(lambda a, b: capped_linear(a, b, 2.0), (h, w))


def test_dropout_drops_residual_outputs_and_attn_dropout_the_probabilities():
    cfg = ModelConfig(depth=2, width=64, head_dim=32, vocab_size=50, seq_len=16, dropout=0.5)
    attn = CausalSelfAttention(cfg, Rotary(32, 16)).train()
    x = torch.randn(2, 16, 64)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), attn(x), rtol=0, atol=0)  # model.dropout leaves the probabilities alone
        attn.attn_dropout = 0.5
        assert not torch.equal(attn(x), attn(x))
        attn.eval()
        torch.testing.assert_close(attn(x), attn(x), rtol=0, atol=0)


def test_residual_dropout_drops_a_fraction_p_and_keeps_the_mean():
    from scarce.model.gpt import residual_dropout

    x = torch.ones(200_000)
    y = residual_dropout(x, 0.1, True)
    assert abs((y == 0).float().mean().item() - 0.1) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    assert abs(y.mean().item() - 1.0) < 0.01
    assert residual_dropout(x, 0.1, False) is x and residual_dropout(x, 0.0, True) is x


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_residual_dropout_draws_each_element_apart_and_its_gradient_is_the_mask(p):
    from scarce.model.gpt import residual_dropout

    # 16 random bits per element, four to a 64-bit word: every lane of a word drops at rate p, lanes are
    # independent (no word drops all four together more than p^4), odd sizes work, a seed repeats the mask
    torch.manual_seed(3)
    y = residual_dropout(torch.ones(400_000), p, True)
    dropped = (y == 0).view(-1, 4).float()
    assert torch.allclose(dropped.mean(0), torch.full((4,), p), atol=0.005)
    assert abs(dropped.prod(1).mean().item() - p**4) < 0.003
    assert abs(y.mean().item() - 1.0) < 0.01
    x = torch.randn(3, 7, 5, requires_grad=True)  # 105 elements: not a multiple of four
    torch.manual_seed(1)
    y = residual_dropout(x, p, True)
    torch.manual_seed(1)
    assert torch.equal(y, residual_dropout(x.detach(), p, True))
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, torch.where(y == 0, 0.0, y / x.detach()))


def test_window_pattern_per_layer_and_last_layer_full():
    cfg = ModelConfig(depth=6, seq_len=64, window_pattern="SSSL")
    assert [layer_window(cfg, i) for i in range(6)] == [32, 32, 32, 0, 32, 0]
    assert window_mask(4, 2, "cpu").int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]


def test_sliding_window_forgets_tokens_beyond_it():
    cfg = ModelConfig(depth=2, width=32, head_dim=16, seq_len=16, vocab_size=10, window_pattern="S", short_window=4)
    torch.manual_seed(0)
    attn = CausalSelfAttention(cfg, Rotary(16, 16), layer=0).eval()
    x = torch.randn(1, 16, 32)
    x2 = x.clone()
    x2[:, 0] += 1.0
    with torch.no_grad():
        a, b = attn(x), attn(x2)
    torch.testing.assert_close(a[:, 4:], b[:, 4:])
    assert not torch.allclose(a[:, 3], b[:, 3])
    full = CausalSelfAttention(ModelConfig(depth=2, width=32, head_dim=16, seq_len=16, window_pattern="S",
                                           short_window=16), Rotary(16, 16), layer=0).eval()
    full.load_state_dict(attn.state_dict())
    plain = CausalSelfAttention(ModelConfig(depth=2, width=32, head_dim=16, seq_len=16), Rotary(16, 16)).eval()
    plain.load_state_dict(attn.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(full(x), plain(x))  # a window as long as the context is full attention


def test_layer_order_replays_the_range():
    assert layer_order(6, (2, 4), 0) == [0, 1, 2, 3, 4, 5]
    assert layer_order(6, (2, 4), 2) == [0, 1, 2, 3, 2, 3, 2, 3, 4, 5]
    assert layer_order(6, None, 3) == list(range(6))


def test_looping_runs_the_named_layers_the_named_number_of_times(build, tokens):
    m = build(loop_layers="1:3", loop_extra=2)
    calls = [0] * 4
    for i, b in enumerate(m.blocks):
        b.register_forward_hook(lambda *a, i=i: calls.__setitem__(i, calls[i] + 1))
    with torch.no_grad():
        before = m(tokens)
        assert calls == [1, 1, 1, 1]
        m.loops = 2
        after = m(tokens)
    assert calls == [2, 4, 4, 2]
    assert not torch.allclose(before, after)


def test_looping_switch_is_a_pure_function_of_the_step():
    cfg = ModelConfig(depth=4, loop_layers="auto", loop_extra=2, loop_from=0.5)
    assert cfg.loop_range == (2, 3)
    assert [loops_at(cfg, s, 10) for s in range(10)] == [0] * 5 + [2] * 5
    assert loops_at(ModelConfig(depth=4), 9, 10) == 0
    with pytest.raises(ValueError, match="model.loop_layers"):
        ModelConfig(depth=4, loop_layers="2:4")  # the last layer is never looped


def test_flops_count_the_replays(build):
    m = build(loop_layers="1:3", loop_extra=2)
    block = sum(p.numel() for p in m.blocks[1].parameters())
    extra = flops_per_token(m, loops=2) - flops_per_token(m, loops=0)
    assert extra == 2 * 2 * (6 * block + 12 * 64 * 32)
    m.loops = 2
    assert flops_per_token(m) == flops_per_token(m, loops=2)


def test_multi_token_prediction_only_in_training(build, tokens):
    m = build(mtp_weight=0.5)
    x, y = tokens[:, :-1], tokens[:, 1:]
    with torch.no_grad():
        m.eval()
        eval_loss = m(x, y)
        logits = m(x)
        torch.testing.assert_close(eval_loss, F.cross_entropy(logits.flatten(0, 1), y.flatten()))
        m.train()
        h = m.hidden(x)
        aux = F.cross_entropy(m.unembed(F.rms_norm(m.mtp.proj(h[:, :-1]), (64,))).flatten(0, 1), y[:, 1:].flatten())
        torch.testing.assert_close(m(x, y), eval_loss + 0.5 * aux)
    assert param_counts(m)["non_embedding"] == param_counts(build())["non_embedding"] + 64 * 64


def test_slowrun_preset_is_the_published_record():
    """The knobs of the NanoGPT Slowrun 1-hour record (qlabs-eng/slowrun train.py, record 20) that scarce has,
    with the record's values (docs/architecture.md, "The `slowrun` preset")."""
    cfg = get_preset("slowrun")
    m, o = cfg.model, cfg.optim
    assert (m.mlp, m.value_embed, m.unet_skips, m.resid_lambdas, m.attn_gate, m.qk_norm, m.tie_embeddings) == \
        ("swiglu", "alt", True, True, True, True, False)
    assert (m.softcap, m.dropout, m.window_pattern, m.short_window, m.mtp_weight) == (10.0, 0.1, "SSSL", 0, 0.3)
    # Not in the 1-hour record: XSA (records 9-10 only), half-truncated RoPE and key offset (tiny track).
    assert (m.xsa, m.rotary_frac, m.key_offset) == (False, 1.0, "")
    # Layers 15-20 of 30 replayed twice more from epoch 7 of 11.
    assert (m.loop_layers, m.loop_extra, m.loop_from) == ("auto", 2, 6 / 11)
    assert dataclasses.replace(m, depth=30).loop_range == (15, 21)
    assert (o.optimizer, o.muon_momentum, o.weight_decay, o.cautious_wd, o.decay_embeddings) == \
        ("muon", 0.95, 1.3, True, False)
    assert (o.beta1, o.beta2, o.eps, o.grad_clip) == (0.8, 0.95, 1e-10, 0.0)
    assert (o.schedule, o.warmup_frac, o.warmdown_frac, o.final_lr_frac) == ("wsd", 0.0, 0.2, 0.0)
    assert (o.wd_schedule, o.warmdown_power, o.ema_decay, o.avg_last) == ("record", 0.5, 0.0, 3)  # line 20; 12 near
    noloop = slowrun_overrides(looping=False)
    assert noloop["model.loop_layers"] == "" and noloop["optim.weight_decay"] == 1.3
    assert apply_overrides(get_preset("small"), [f"{k}={json.dumps(v)}" for k, v in noloop.items()]).model.loop_range \
        is None
