"""Muon: near-orthogonal updates (Newton-Schulz or Polar Express), agreement with torch.optim.Muon, AdamW groups,
cautious decay, MuonEq-R's row normalisation and the momentum warmup."""

import pytest
import torch

from scarce.config import ModelConfig, OptimConfig
from scarce.model.gpt import GPT
from scarce.train.muon import MuonAdamW, normalize_rows, orthogonalize
from scarce.train.optim import build_optimizer, muon_momentum, param_groups, set_momentum

torch.set_num_threads(1)


def test_newton_schulz_output_is_near_orthogonal():
    torch.manual_seed(0)
    for shape in [(64, 64), (32, 96), (96, 32)]:
        k = min(shape)
        u, _ = torch.linalg.qr(torch.randn(shape[0], k))
        v, _ = torch.linalg.qr(torch.randn(shape[1], k))
        g = u @ torch.diag(torch.logspace(-1, 1, k)) @ v.T  # condition number 100
        out = orthogonalize(g)
        s = torch.linalg.svdvals(out)
        assert 0.6 < s.min() and s.max() < 1.25, (shape, s.min(), s.max())
        assert torch.nn.functional.cosine_similarity(out.flatten(), (u @ v.T).flatten(), dim=0) > 0.95


def test_muon_step_matches_torch_muon():
    torch.manual_seed(0)
    w = torch.randn(48, 24)
    grads = [torch.randn(48, 24) for _ in range(3)]
    a, b = w.clone().requires_grad_(), w.clone().requires_grad_()
    ours = MuonAdamW([{"params": [a], "muon": True, "lr": 0.02, "weight_decay": 0.0}], momentum=0.95)
    ref = torch.optim.Muon([b], lr=0.02, weight_decay=0.0, momentum=0.95, nesterov=True, adjust_lr_fn="original")
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    # torch orthogonalises in bfloat16, we do in float32 on CPU: equal up to bf16 rounding
    da, db = (a - w).detach().flatten(), (b - w).detach().flatten()
    assert torch.nn.functional.cosine_similarity(da, db, dim=0) > 0.999
    assert abs(da.norm() / db.norm() - 1) < 0.01


def test_adamw_groups_match_torch_adamw():
    torch.manual_seed(0)
    w = torch.randn(10, 7)
    a, b = w.clone().requires_grad_(), w.clone().requires_grad_()
    ours = MuonAdamW([{"params": [a], "lr": 1e-2, "weight_decay": 0.1}], betas=(0.9, 0.95), eps=1e-8)
    ref = torch.optim.AdamW([b], lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8)
    for _ in range(4):
        g = torch.randn(10, 7)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    torch.testing.assert_close(a, b)


def test_cautious_weight_decay_only_where_signs_agree():
    p = torch.tensor([[1.0, -1.0], [1.0, -1.0]], requires_grad=True)
    opt = MuonAdamW([{"params": [p], "lr": 0.1, "weight_decay": 1.0}], cautious_wd=True)
    p.grad = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # first Adam update = sign(grad)
    opt.step()
    # decay (x 0.9) where update and weight agree: (0,0) and (1,1); then the Adam step of -0.1*sign
    expected = torch.tensor([[0.9 - 0.1, -1.0 - 0.1], [1.0 + 0.1, -0.9 + 0.1]])
    torch.testing.assert_close(p.detach(), expected, atol=1e-6, rtol=0)


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    cfg = ModelConfig(depth=2, width=32, head_dim=16, seq_len=16, vocab_size=50, value_embed="all", attn_gate=True,
                      resid_lambdas=True)
    model = GPT(cfg)
    groups = {g["name"]: g for g in param_groups(model, OptimConfig(optimizer="muon", muon_lr=0.05))}
    assert groups["matrices"]["muon"] and groups["matrices"]["base_lr"] == 0.05
    assert all(p.ndim == 2 and min(p.shape) >= 16 for p in groups["matrices"]["params"])
    assert groups["embeddings"]["params"] == [model.embed.weight]
    gates = {id(b.attn.gate.weight) for b in model.blocks} | {id(b.attn.ve.gate.weight) for b in model.blocks}
    assert gates <= {id(p) for p in groups["scalars"]["params"]}
    assert not groups["embeddings"].get("muon") and not groups["scalars"].get("muon")
    assert isinstance(build_optimizer(model, OptimConfig(optimizer="muon"), "cpu"), MuonAdamW)
    assert isinstance(build_optimizer(model, OptimConfig(), "cpu"), torch.optim.AdamW)


def _conditioned(shape, seed=0):
    """A random matrix of the shape with singular values spread over 0.1 .. 10, and its polar factor U V^T."""
    g = torch.Generator().manual_seed(seed)
    k = min(shape)
    u, _ = torch.linalg.qr(torch.randn(shape[0], k, generator=g))
    v, _ = torch.linalg.qr(torch.randn(shape[1], k, generator=g))
    return u @ torch.diag(torch.logspace(-1, 1, k)) @ v.T, u @ v.T


def test_polar_express_lands_closer_to_one_than_newton_schulz():
    for shape in [(64, 64), (32, 96), (96, 32)]:
        g, polar = _conditioned(shape)
        ns = torch.linalg.svdvals(orthogonalize(g, orth="newton-schulz"))
        pe_out = orthogonalize(g, orth="polar-express")
        pe = torch.linalg.svdvals(pe_out)
        assert 0.84 < pe.min() and pe.max() < 1.16, (shape, pe.min(), pe.max())
        assert pe.min() > ns.min() + 0.1  # Newton-Schulz leaves the small directions at ~0.68
        assert torch.nn.functional.cosine_similarity(pe_out.flatten(), polar.flatten(), dim=0) > 0.99
    wide = torch.randn(48, 160, generator=torch.Generator().manual_seed(4))  # random, well-conditioned
    s = torch.linalg.svdvals(orthogonalize(wide, orth="polar-express"))
    assert 0.84 < s.min() and s.max() < 1.16


def test_newton_schulz_is_unchanged_by_the_choice():
    g, _ = _conditioned((40, 24), seed=2)
    a, b = 3.4445, -4.7750
    x = g.T / g.norm()  # the original loop, written out
    for _ in range(5):
        gram = x @ x.T
        x = a * x + (b * gram + 2.0315 * gram @ gram) @ x
    torch.testing.assert_close(orthogonalize(g), x.T, rtol=0, atol=1e-6)


def _muon_update(grad, **kw):
    p = torch.zeros(grad.shape, requires_grad=True)
    opt = MuonAdamW([{"params": [p], "muon": True, "lr": 1.0, "weight_decay": 0.0}], **kw)
    p.grad = grad.clone()
    opt.step()
    return -p.detach()


def test_row_normalisation_makes_the_update_blind_to_a_rows_scale():
    g, _ = _conditioned((24, 40), seed=3)
    loud = g.clone()
    loud[0] *= 1000.0  # one output unit with a thousand times the gradient
    assert torch.allclose(normalize_rows(loud).norm(dim=1), torch.ones(24))
    plain, scaled = _muon_update(g, row_norm=True), _muon_update(loud, row_norm=True)
    torch.testing.assert_close(plain, scaled, rtol=1e-4, atol=1e-5)  # MuonEq-R: rows weigh the same
    without = _muon_update(loud)
    assert (without - _muon_update(g)).abs().max() > 0.05  # plain Muon: the loud row takes over the update
    for orth in ("newton-schulz", "polar-express"):  # the update is still near-orthogonal
        s = torch.linalg.svdvals(_muon_update(g, row_norm=True, orth=orth))
        assert 0.6 < s.min() and s.max() < 1.25


def test_muon_momentum_warms_up_from_085_to_095():
    cfg = OptimConfig(optimizer="muon", muon_momentum_warmup=300)
    assert [muon_momentum(s, cfg) for s in (0, 150, 300, 1000)] == pytest.approx([0.85, 0.90, 0.95, 0.95])
    assert muon_momentum(7, OptimConfig(optimizer="muon")) == 0.95
    model = GPT(ModelConfig(depth=1, width=32, head_dim=16, seq_len=16, vocab_size=50))
    opt = build_optimizer(model, OptimConfig(optimizer="muon", muon_orth="polar-express", muon_row_norm=True), "cpu")
    set_momentum(opt, 0.9)
    assert [g["momentum"] for g in opt.param_groups if g.get("muon")] == [0.9]
    assert [(g["orth"], g["row_norm"]) for g in opt.param_groups if g.get("muon")] == [("polar-express", True)]


@pytest.mark.parametrize("fields, message", [
    ({"optimizer": "muon", "muon_orth": "svd"}, "optim.muon_orth: must be newton-schulz or polar-express"),
    ({"muon_row_norm": True}, "set optim.optimizer=muon"),
    ({"muon_orth": "polar-express"}, "set optim.optimizer=muon"),
    ({"optimizer": "muon", "muon_momentum_warmup": -1}, "optim.muon_momentum_warmup"),
    ({"optimizer": "muon", "muon_momentum_start": 1.0}, r"optim.muon_momentum_start: must be in \[0, 1\)"),
])
def test_bad_muon_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        OptimConfig(**fields)
