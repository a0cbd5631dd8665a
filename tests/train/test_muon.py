"""Muon: near-orthogonal updates, agreement with torch.optim.Muon, AdamW groups, cautious decay."""

import torch

from scarce.config import ModelConfig, OptimConfig
from scarce.model.gpt import GPT
from scarce.train.muon import MuonAdamW, orthogonalize
from scarce.train.optim import build_optimizer, param_groups

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
