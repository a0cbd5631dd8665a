"""The output head and the cross-entropy in one pass over row chunks, gradients included (the fused linear
cross-entropy of Liger-Kernel / Apple's cut-cross-entropy, for the CPU).

The plain path writes the (N, V) logits, their log-softmax, then in backward a zero-filled (N, V) gradient,
the log-softmax backward and two matmuls: five passes over an N x V array that no cache holds (N = 4,096
tokens x V = 4,096 classes is 64 MB). Here each chunk of rows computes its logits, log-sum-exp and loss, turns
the logits into the softmax gradient in place (softmax - one-hot) while they are still in cache, and
multiplies it straight into the gradients of the hidden states and of the head; backward only scales them by
the incoming gradient of the loss. Same numbers up to summation order; the (N, V) logits are never whole.
With a logit soft-cap c (Gemma 2's c * tanh(z / c)) the chunk's gradient goes through the cap as well:
d/dz c * tanh(z / c) = 1 - tanh(z / c)^2.
"""

from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 22
"""Logit elements per chunk (16 MB of fp32; rows per chunk = this / V): small enough that the (N, V) array is
never whole, large enough that each chunk's matmuls keep 2 threads busy (measured 2 MB: 1.01x the reference
loop at 2 threads; 8 MB: 1.09x; 32 MB: 1.07x; benchmarks/results/side_by_side_cpu.md)."""


class LinearCrossEntropy(torch.autograd.Function):
    """mean_i CE(cap(h_i @ w.T), y_i) for h (N, d), w (V, d), y (N,); cap is the identity when c is 0."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, w: torch.Tensor, y: torch.Tensor, c: float = 0.0) -> torch.Tensor:
        n, rows = h.shape[0], max(16, CHUNK_ELEMENTS // w.shape[0])
        grad_h, grad_w, total = torch.empty_like(h), torch.zeros_like(w), h.new_zeros((), dtype=torch.float32)
        for s in range(0, n, rows):
            hc, yc = h[s:s + rows], y[s:s + rows]
            logits = (hc @ w.t()).float()  # (rows, V)
            t = None
            if c:  # tanh(z / c) = 2 sigmoid(2z / c) - 1: on the CPU sigmoid is ~10x faster than tanh
                t = logits.mul_(2.0 / c).sigmoid_().mul_(2.0).sub_(1.0)  # (rows, V), kept for the gradient
                logits = t * c
            target = logits.gather(1, yc[:, None]).squeeze(1)  # (rows,)
            top = logits.amax(dim=-1)  # (rows,)
            p = logits.sub_(top[:, None]).exp_()  # unnormalised softmax, in place: one exp per logit
            norm = p.sum(dim=-1)  # (rows,)
            total += (top + norm.log() - target).sum()  # log-sum-exp minus the target's logit
            p.div_(norm[:, None])  # softmax
            p[torch.arange(len(yc), device=p.device), yc] -= 1.0  # - one-hot: d loss_i / d logits_i
            if t is not None:
                p.addcmul_(p, t.square_(), value=-1.0)  # through the cap: p (1 - tanh^2)
            p = p.to(h.dtype)
            torch.mm(p, w, out=grad_h[s:s + rows])  # (rows, d)
            grad_w.addmm_(p.t(), hc)  # (V, d)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.n = n
        return total / n

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        scale = grad / ctx.n
        return grad_h * scale, grad_w * scale, None, None


def linear_cross_entropy(h: torch.Tensor, w: torch.Tensor, y: torch.Tensor, softcap: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy in nats of the logits h @ w.T (h: (N, d), w: (V, d)), soft-capped at `softcap` when
    it is not 0, against targets y (N,)."""
    return LinearCrossEntropy.apply(h, w, y, softcap)
