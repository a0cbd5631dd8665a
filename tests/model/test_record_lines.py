"""NanoGPT Slowrun's record lines as model knobs: stochastic depth (line 15), the record's init (line 14) and
interleaved head attention (line 17)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scarce.config import ModelConfig, OptimConfig
from scarce.model.droppath import drop_path, drop_prob
from scarce.train.optim import param_groups


def test_drop_probability_grows_linearly_with_depth():
    assert [drop_prob(i, 5, 0.2) for i in range(5)] == [0.0, 0.05, 0.1, 0.15000000000000002, 0.2]
    assert drop_prob(0, 1, 0.5) == 0.0  # one block: never skipped


def test_drop_path_skips_whole_sequences_and_rescales_the_kept():
    torch.manual_seed(0)
    x, out = torch.randn(4000, 3, 5), torch.randn(4000, 3, 5)
    y = drop_path(x, out, 0.3, training=True)
    skipped = (y == x).all(dim=(1, 2))
    kept = torch.isclose(y, x + (out - x) / 0.7, rtol=1e-5, atol=1e-6).all(dim=(1, 2))
    assert bool((skipped ^ kept).all())  # every sequence one or the other, whole
    assert abs(skipped.float().mean().item() - 0.3) < 0.03
    assert drop_path(x, out, 0.3, training=False) is out and drop_path(x, out, 0.0, training=True) is out


def _skip_last_block_logits(model, tokens):
    """The logits of `model` (depth 2, no other knobs) with its last block left out."""
    return model.unembed(model.norm(model.blocks[0](model.embed(tokens))))


def test_a_skipped_block_gets_no_gradient_from_the_sequences_it_skipped(build):
    model = build(depth=2, drop_path=0.5).train()  # the last block skipped with probability 0.5
    tokens = torch.randint(0, 97, (16, 32), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(5)
    logits = model(tokens)  # (B, T, V)
    with torch.no_grad():
        skipped = (logits == _skip_last_block_logits(model, tokens)).all(dim=(1, 2))  # (B,)
    assert 0 < int(skipped.sum()) < 16
    per_seq = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none").view(16, -1)
    last, first = list(model.blocks[1].parameters()), list(model.blocks[0].parameters())
    grads = torch.autograd.grad(per_seq[skipped].sum(), last + first, retain_graph=True, allow_unused=True)
    assert all(g is None or not g.any() for g in grads[:len(last)])
    assert any(g is not None and g.any() for g in grads[len(last):])  # the first block still learns from them
    kept = torch.autograd.grad(per_seq[~skipped].sum(), last)
    assert all(g.any() for g in kept)


def test_evaluation_runs_every_block_and_training_draws_from_the_global_generator(build, tokens):
    plain, dropped = build(), build(drop_path=0.5)
    dropped.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert torch.equal(plain.eval()(tokens), dropped.eval()(tokens))
        dropped.train()
        torch.manual_seed(1)
        a = dropped(tokens)
        torch.manual_seed(1)
        b = dropped(tokens)
        torch.manual_seed(2)
        c = dropped(tokens)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("value", [1.0, -0.1, 1.5])
def test_drop_path_outside_zero_one_is_refused(value):
    with pytest.raises(ValueError, match=r"model.drop_path: must be in \[0, 1\)"):
        ModelConfig(drop_path=value)


def test_record_init_stds(build):
    model = build(depth=4, aspect_ratio=48, init="record", attn_gate=True, mlp="swiglu")  # width 192
    d = model.cfg.d_model
    params = dict(model.named_parameters())
    for name in ("blocks.0.attn.qkv.weight", "blocks.3.mlp.fc.weight", "blocks.2.mlp.gate.weight"):
        w = params[name]
        assert w.abs().max() <= math.sqrt(3 / d)  # uniform in +-sqrt(3)/sqrt(d) ...
        assert w.std().item() == pytest.approx(1 / math.sqrt(d), rel=0.05)  # ... of std 1/sqrt(d)
    for name in ("blocks.0.attn.proj.weight", "blocks.3.mlp.proj.weight"):
        w = params[name]
        assert w.std().item() == pytest.approx(1 / math.sqrt(d), rel=0.05)
        assert w.abs().max() > math.sqrt(3 / d)  # normal, not uniform: tails beyond the uniform's bound
    assert params["embed.weight"].std().item() == pytest.approx(0.02, rel=0.1)  # embedding as GPT-2's
    assert not params["blocks.1.attn.gate.weight"].any()  # the knobs' own init after it: zero gates


def test_gpt2_init_is_unchanged_by_default(build):
    model = build(depth=4, aspect_ratio=48)
    params = dict(model.named_parameters())
    assert params["blocks.0.attn.qkv.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    assert params["blocks.0.attn.proj.weight"].std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.05)
    with pytest.raises(ValueError, match="model.init"):
        ModelConfig(init="xavier")


def test_iha_starts_as_plain_attention(build, tokens):
    plain, mixed = build(), build(iha="all", kv_heads=2)
    assert not build(iha="all").blocks[0].attn.mix.q.sub(torch.eye(4)).any()  # the identity at init
    plain = build(kv_heads=2)
    missing, unexpected = mixed.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and set(missing) == {f"blocks.{i}.attn.mix.{p}" for i in range(4) for p in "qkv"}
    with torch.no_grad():
        torch.testing.assert_close(mixed(tokens), plain(tokens), rtol=0, atol=1e-6)


def test_iha_mixes_the_heads_of_q_k_and_v(build):
    """By hand: the mix applied to the heads of the projection's outputs (q_h = sum_m M[h, m] q_m), against the
    folded weight; and a permutation of the heads in all three permutes the heads' outputs."""
    attn = build(iha="all", kv_heads=2, bias=True, qk_norm=True).blocks[1].attn  # 4 query, 2 key/value heads
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in (attn.mix.q, attn.mix.k, attn.mix.v):
            m.copy_(torch.randn(m.shape, generator=g))
        nn.init.normal_(attn.qkv.bias, generator=g)
    x = torch.randn(2, 9, 64, generator=g)
    heads = attn.qkv(x).view(2, 9, 8, 16)  # (B, T, H + 2 KV, D) unmixed
    q, k, v = heads.split((4, 2, 2), dim=2)
    by_hand = torch.cat([torch.einsum("hm,btmd->bthd", attn.mix.q, q), torch.einsum("hm,btmd->bthd", attn.mix.k, k),
                         torch.einsum("hm,btmd->bthd", attn.mix.v, v)], dim=2)
    folded = F.linear(x, *attn.mix.fold(attn.qkv.weight, attn.qkv.bias)).view(2, 9, 8, 16)
    torch.testing.assert_close(folded, by_hand, rtol=1e-5, atol=1e-5)

    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    with torch.no_grad():  # query heads (0 2)(1 3) and key/value heads (0 1) swapped: each query head keeps its
        attn.mix.q.copy_(torch.kron(swap, torch.eye(2)))  # key/value partner under the grouping (0, 1 -> 0; 2, 3 -> 1)
        attn.mix.k.copy_(swap)
        attn.mix.v.copy_(swap)
        mixed = attn(x)
        attn.mix.init_weights()
        seen = []  # the plain heads' outputs, as the output projection reads them
        hook = attn.proj.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
        attn(x)
        hook.remove()
    y = seen[0].view(2, 9, 4, 16)[:, :, [2, 3, 0, 1]].reshape(2, 9, 64)  # the plain heads, permuted
    torch.testing.assert_close(mixed, attn.proj(y), rtol=1e-5, atol=1e-5)


def test_iha_matrices_learn_by_adamw_without_decay(build, tokens):
    model = build(iha="0,2", attn_gate=True)
    assert model.blocks[1].attn.mix is None and model.blocks[2].attn.mix is not None
    model(tokens[:, :-1], tokens[:, 1:]).backward()
    assert all(p.grad is not None and p.grad.any() for b in (0, 2) for p in model.blocks[b].attn.mix.parameters())
    groups = {g["name"]: g for g in param_groups(model, OptimConfig(optimizer="muon"))}
    mixes = {id(p) for b in (0, 2) for p in model.blocks[b].attn.mix.parameters()}
    assert mixes <= {id(p) for p in groups["scalars"]["params"]} and groups["scalars"]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="model.iha: layer 7 does not exist"):
        ModelConfig(iha="7")
