"""The fused pieces of the CPU step compute what the plain expressions compute: the head with the
cross-entropy (soft-capped or not, over several row chunks), relu(z)^2 and the gain-free RMSNorm, values and
gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scarce.model import linear_ce
from scarce.model.mlp import relu_squared
from scarce.model.norm import rms_norm
from scarce.model.softcap import capped_linear


@pytest.mark.parametrize("cap", [0.0, 10.0, 2.0])
def test_fused_head_and_cross_entropy_match_the_plain_loss(cap, monkeypatch):
    monkeypatch.setattr(linear_ce, "CHUNK_ELEMENTS", 64 * 700)  # 64-row chunks: 5 chunks, the last one short
    torch.manual_seed(0)
    h = torch.randn(300, 32, requires_grad=True)
    w = torch.randn(700, 32, requires_grad=True)
    y = torch.randint(0, 700, (300,))
    plain = F.cross_entropy(capped_linear(h, w, cap) if cap else F.linear(h, w), y)
    fused = linear_ce.linear_cross_entropy(h, w, y, cap)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-6)
    for a, b in zip(torch.autograd.grad(3.0 * plain, (h, w)), torch.autograd.grad(3.0 * fused, (h, w))):
        torch.testing.assert_close(b, a, atol=1e-7, rtol=1e-5)


def test_relu_squared_matches_autograd():
    torch.manual_seed(0)
    z = torch.randn(64, 48, requires_grad=True)
    g = torch.randn(64, 48)
    assert torch.equal(relu_squared(z), F.relu(z).square())
    assert torch.equal(torch.autograd.grad(relu_squared(z), z, g)[0], torch.autograd.grad(F.relu(z).square(), z, g)[0])


@pytest.mark.parametrize("fields", [{}, {"mtp_weight": 0.3, "softcap": 10.0, "tie_embeddings": False}])
def test_the_training_loss_takes_the_fused_path_with_the_same_numbers(build, tokens, fields, monkeypatch):
    """In training on the CPU the main head's loss and the multi-token head's go through the fused kernel; the
    loss and every gradient equal those of the plain path."""
    monkeypatch.setattr(linear_ce, "CHUNK_ELEMENTS", 16 * 97)  # several chunks
    from scarce.model.gpt import GPT

    x, y = tokens[:, :-1], tokens[:, 1:]
    m = build(**fields).train()
    calls = []
    real = linear_ce.LinearCrossEntropy.apply
    monkeypatch.setattr(linear_ce.LinearCrossEntropy, "apply", lambda *a: calls.append(1) or real(*a))
    fused = m(x, y)
    fused_grads = torch.autograd.grad(fused, list(m.parameters()))
    assert len(calls) == (2 if fields else 1)
    monkeypatch.setattr(GPT, "_fused_loss", lambda self, h: False)
    plain = m(x, y)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-6)
    for a, b in zip(torch.autograd.grad(plain, list(m.parameters())), fused_grads):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-4)


def test_compiled_training_step_keeps_the_fused_loss_and_its_numbers(build, tokens):
    """Under torch.compile on the CPU the loss still goes through the fused head + cross-entropy (faster than
    the compiled plain loss there), with the eager step's loss and gradients."""
    x, y = tokens[:, :-1], tokens[:, 1:]
    m = build(depth=2, softcap=10.0, mtp_weight=0.3).train()
    eager = m(x, y)
    eager_grads = torch.autograd.grad(eager, list(m.parameters()))
    compiled = torch.compile(m)(x, y)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-6)
    for a, b in zip(eager_grads, torch.autograd.grad(compiled, list(m.parameters()))):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("eps", [None, 1e-5])
def test_rms_norm_backward_matches_autograd(eps):
    torch.manual_seed(0)
    z = torch.randn(4, 3, 16, 8).transpose(1, 2).requires_grad_(True)  # a non-contiguous view, as q and k are
    g = torch.randn(4, 16, 3, 8)
    ours, plain = rms_norm(z, eps), F.rms_norm(z, (8,), eps=eps)
    assert torch.equal(ours, plain)
    torch.testing.assert_close(torch.autograd.grad(ours, z, g)[0], torch.autograd.grad(plain, z, g)[0],
                               atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        assert torch.equal(rms_norm(z, eps), plain)
