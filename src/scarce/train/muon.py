"""Muon for the hidden matrices, AdamW for the rest, in one optimizer (one state dict to checkpoint).

Muon (Jordan et al., 2024) replaces each matrix's momentum update by its nearest semi-orthogonal
matrix, computed with a quintic Newton-Schulz iteration, so every direction of the update moves at
the same rate; it trains faster per token than AdamW and tolerates the heavy weight decay that
fixed-data training wants. `torch.optim.Muon` does the matrix part but has no AdamW groups and no
cautious weight decay, hence this small class. Groups with `muon=True` use Muon, the others AdamW.

Two choices of NanoGPT Slowrun's record line 18 (MuonEq-R) sit beside the plain Muon: the orthogonalisation by
Polar Express instead of Newton-Schulz (`orth="polar-express"`), and the row normalisation of the momentum before it
(`row_norm=True`, MuonEq-R's "R").
"""

from __future__ import annotations

import math

import torch

from scarce.config import MUON_ORTHS
from scarce.train import parallel

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # Keller Jordan's quintic: fast growth of small singular values
POLAR_EXPRESS = (  # Amsel et al. 2025, "The Polar Express": one quintic per iteration (safety 2e-2, cushion 2)
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)


def orthogonalize(g: torch.Tensor, steps: int = 5, eps: float = 1e-7, orth: str = "newton-schulz") -> torch.Tensor:
    """Approximately U V^T of the SVD g = U S V^T by odd quintic iterations: Newton-Schulz repeats one polynomial
    (singular values land in ~[0.7, 1.2]); Polar Express takes a minimax-optimal one per iteration (Amsel et al.
    2025), which ends closer to 1, and shrinks the start by its safety factor 1.02."""
    assert orth in MUON_ORTHS and (orth == "newton-schulz" or steps <= len(POLAR_EXPRESS)), (orth, steps)
    coefficients = [NS_COEFFICIENTS] * steps if orth == "newton-schulz" else POLAR_EXPRESS[:steps]
    x = g.bfloat16() if g.is_cuda else g.float()
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    scale = 1.02 if orth == "polar-express" else 1.0
    x = x / (x.norm() * scale).clamp(min=eps)  # spectral norm <= Frobenius norm <= 1
    for a, b, c in coefficients:
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # b * gram + c * gram @ gram
        x = torch.addmm(x, poly, x, beta=a)  # a * x + poly @ x
    return (x.T if tall else x).to(g.dtype)


def normalize_rows(g: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """MuonEq-R: every row of g (one output unit of an (out, in) weight) scaled to unit norm, so that the
    orthogonalisation sees rows of equal weight and no unit dominates the update by the size of its gradient."""
    return g / g.float().norm(dim=-1, keepdim=True).clamp(min=eps).to(g.dtype)


class MuonAdamW(torch.optim.Optimizer):
    def __init__(self, groups: list[dict], betas=(0.9, 0.95), eps: float = 1e-8, momentum: float = 0.95,
                 ns_steps: int = 5, cautious_wd: bool = False, orth: str = "newton-schulz", row_norm: bool = False):
        defaults = {"lr": 1e-3, "weight_decay": 0.0, "betas": betas, "eps": eps, "momentum": momentum,
                    "ns_steps": ns_steps, "muon": False, "cautious_wd": cautious_wd, "orth": orth,
                    "row_norm": row_norm}
        super().__init__(groups, defaults)
        for g in self.param_groups:
            if g["muon"] and any(p.ndim != 2 for p in g["params"]):
                raise ValueError("Muon groups take 2-D matrices only")

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = self._muon(p, group) if group["muon"] else self._adam(p, group)
                self._decay(p, update, group)
                p.add_(update, alpha=-group["lr"])

    def _muon(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        state, mu = self.state[p], group["momentum"]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf = state["momentum_buffer"]
        buf.mul_(mu).add_(p.grad)
        nesterov = p.grad.add(buf, alpha=mu)
        # The orthogonalisation needs the whole matrix: a sharded one (FSDP) is gathered, row-normalised and
        # orthogonalized alike on every rank, and each rank keeps its shard of the result (as Slowrun's distributed
        # Muon, without the overlap). Scale so that tall matrices get the same per-entry update size (Keller's
        # "original" rule).
        full = parallel.full(nesterov)
        if group.get("row_norm"):
            full = normalize_rows(full)
        update = orthogonalize(full, group["ns_steps"], orth=group.get("orth", "newton-schulz"))
        update = update * math.sqrt(max(1.0, p.size(0) / p.size(1)))
        return parallel.like(update, p)

    def _adam(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        state, (b1, b2) = self.state[p], group["betas"]
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"].item()
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(p.grad, 1 - b1)
        v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        denom = (v / (1 - b2**t)).sqrt_().add_(group["eps"])
        return (m / (1 - b1**t)) / denom

    @staticmethod
    def _decay(p: torch.Tensor, update: torch.Tensor, group: dict) -> None:
        """Decoupled weight decay, lr * wd * p; cautious (Chen et al., 2025): only where the update
        pushes the same way as the decay, i.e. where update and weight agree in sign."""
        wd = group["lr"] * group["weight_decay"]
        if not wd:
            return
        if group["cautious_wd"]:
            p.sub_(p * (update * p > 0), alpha=wd)
        else:
            p.mul_(1 - wd)
