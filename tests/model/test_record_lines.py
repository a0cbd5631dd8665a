"""NanoGPT Slowrun's record lines as model knobs: stochastic depth (line 15) and the record's init (line 14)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scarce.config import ModelConfig
from scarce.model.droppath import drop_path, drop_prob


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
