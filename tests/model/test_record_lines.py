"""NanoGPT Slowrun's record lines as model knobs: stochastic depth (line 15), the record's init (line 14) and
interleaved head attention (line 17); the tiny track's truncated backprop through a recurrence and learnable XSA."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scarce.config import ModelConfig, OptimConfig
from scarce.model.attention import exclude_self
from scarce.model.droppath import drop_path, drop_prob
from scarce.model.gpt import flops_per_token
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


def _pass_grads(model, tokens):
    """Whether each block call of one training forward builds a graph, and the loss."""
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, out: seen.append(out.requires_grad)) for b in model.blocks]
    loss = model(tokens[:, :-1], tokens[:, 1:])
    for h in hooks:
        h.remove()
    return seen, loss


@pytest.mark.parametrize("extra", [1, 2])
def test_truncated_backprop_runs_the_earlier_passes_without_gradient(build, tokens, extra):
    kw = dict(loop_layers="0:3", loop_extra=extra, tie_embeddings=False)  # the whole net but the last block recurs
    full, last = build(**kw).train(), build(**kw, loop_backprop="last").train()
    last.load_state_dict(full.state_dict())
    full.loops = last.loops = extra
    torch.manual_seed(3)
    graphs_full, loss_full = _pass_grads(full, tokens)
    torch.manual_seed(3)
    graphs_last, loss_last = _pass_grads(last, tokens)
    assert graphs_full == [True] * (3 * (extra + 1) + 1)
    assert graphs_last == [False] * (3 * extra) + [True] * 4  # only the last pass and the unlooped last block
    assert torch.equal(loss_last, loss_full)  # the forward is the same
    loss_full.backward()
    loss_last.backward()
    # the embedding reaches the loss only through the first pass here (no x0 paths, untied head): cut off
    assert full.embed.weight.grad.any() and (last.embed.weight.grad is None or not last.embed.weight.grad.any())
    grads = [(a.grad, b.grad) for a, b in zip(full.blocks[0].parameters(), last.blocks[0].parameters())]
    assert all(b is not None and b.any() and not torch.equal(a, b) for a, b in grads)  # the last pass still trains
    assert last.eval().truncated_passes() == 0 and full.train().truncated_passes() == 0


def test_truncated_backprop_through_x0_paths_and_its_flops(build, tokens):
    model = build(loop_layers="0:3", loop_backprop="last", resid_lambdas=True).train()
    model.loops = 1
    model(tokens[:, :-1], tokens[:, 1:]).backward()
    assert model.embed.weight.grad.any()  # the embedding learns through the x0 lambdas and the tied head
    plain = build(loop_layers="0:3")
    looped = sum(p.numel() for b in plain.blocks[:3] for p in b.parameters())
    replay = 6 * looped + 3 * 12 * 64 * 32  # one trained pass through blocks 0-2, attention term included
    assert flops_per_token(plain, 1) - flops_per_token(plain, 0) == replay
    truncated = build(loop_layers="0:3", loop_backprop="last")
    assert flops_per_token(truncated, 1) - flops_per_token(truncated, 0) == pytest.approx(replay / 3)


@pytest.mark.parametrize("fields, message", [
    ({"loop_backprop": "last"}, "model.loop_backprop: 'last' truncates backprop through the looped passes"),
    ({"loop_backprop": "last", "loop_layers": "1:3"}, "model.loop_backprop: 'last' needs a loop from layer 0"),
    ({"loop_backprop": "first", "loop_layers": "0:3"}, "model.loop_backprop: must be all or last"),
    ({"xsa_learn": True}, "model.xsa_learn: scales exclusive self attention: set model.xsa"),
])
def test_bad_recurrence_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(depth=4, **fields)


def test_learnable_xsa_starts_as_plain_attention_and_removes_tanh_alpha_of_the_self_component(build, tokens):
    plain, xsa, learn = build(), build(xsa=True), build(xsa=True, xsa_learn=True)
    state = plain.state_dict()
    xsa.load_state_dict(state)
    learn.load_state_dict(state, strict=False)
    with torch.no_grad():
        assert torch.equal(learn(tokens), plain(tokens))  # alpha = 0: nothing removed
        for b in learn.blocks:
            b.attn.xsa_scale.alpha.fill_(20.0)  # tanh = 1: plain XSA
        torch.testing.assert_close(learn(tokens), xsa(tokens), rtol=0, atol=1e-6)
    g = torch.Generator().manual_seed(0)
    y, v = torch.randn(2, 3, 5, 8, generator=g), torch.randn(2, 3, 5, 8, generator=g)
    half = exclude_self(y, v, torch.full((3, 1, 1), 0.5))
    torch.testing.assert_close(half, (y + exclude_self(y, v)) / 2)  # half of the self component removed
    learn.reset_parameters()
    learn.train()(tokens[:, :-1], tokens[:, 1:]).backward()
    assert learn.blocks[0].attn.xsa_scale.alpha.grad.any() and not learn.blocks[0].attn.xsa_scale.alpha.any()
