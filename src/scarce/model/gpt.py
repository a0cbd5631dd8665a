"""A GPT with the modern baseline: pre-norm RMSNorm, rotary attention, ReLU² MLP, no biases. The same
blocks take the shapes of GPT-2 and Llama (norms with parameters, biases, learned positions, GELU or
SwiGLU, grouped-query attention) so that a run can start from those families' weights (`model/hf.py`).

`GPT.forward` is a loop over blocks (in the order `layer_order` gives, which replays the looped
layers); the optional U-Net skips, residual lambdas, multi-token head and logit softcap are visible
there. Parameter counts and FLOPs per token live beside the model so that the trainer, the
benchmarks and the scaling fits use one definition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scarce.config import ModelConfig
from scarce.model.attention import CausalSelfAttention
from scarce.model.droppath import drop_path, drop_prob
from scarce.model.init import init_gpt2, init_record
from scarce.model.kvcache import KVCache, LayerCache
from scarce.model.linear_ce import linear_cross_entropy
from scarce.model.looping import layer_order
from scarce.model.mlp import build_mlp
from scarce.model.mtp import MTPHead
from scarce.model.norm import Norm
from scarce.model.rotary import Rotary
from scarce.model.skips import ResidualLambdas, UNetSkips
from scarce.model.softcap import capped_linear


def residual_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout. On accelerators `F.dropout`'s fused kernel. On the CPU a draw of 16 random bits per element
    (64-bit words of the generator cut in four: `rand_like` spends one 32-bit draw and a float conversion per
    element) against the threshold nearest p, and a float mask: with its backward ~half the time of a
    uniform draw's mask and ~30% of `F.dropout`'s Bernoulli sampling. The drop probability is k/65536 with
    k = round(65536 p) (p = 0.1 drops 0.100006), and the scale its exact inverse, so the output's
    expectation is x."""
    if not training or not p:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    k = round(p * 65536)
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-2**63, None)
    bits = words.view(torch.int16)[:n].view(x.shape)
    return x * (bits >= k - 32768).to(x.dtype).mul_(65536 / (65536 - k))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, rotary: Rotary | None, layer: int = 0):
        super().__init__()
        self.norm1, self.norm2 = Norm(cfg), Norm(cfg)
        self.attn = CausalSelfAttention(cfg, rotary, layer)
        self.mlp = build_mlp(cfg)
        self.p = cfg.dropout
        self.drop = drop_prob(layer, cfg.depth, cfg.drop_path)  # stochastic depth: this block's skip probability

    def forward(self, x: torch.Tensor, x0: torch.Tensor | None = None, cache: LayerCache | None = None,
                pos: int = 0) -> torch.Tensor:
        h = x + residual_dropout(self.attn(self.norm1(x), x0, cache, pos), self.p, self.training)
        h = h + residual_dropout(self.mlp(self.norm2(h)), self.p, self.training)
        return drop_path(x, h, self.drop, self.training)


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size <= 0:
            raise ValueError("model.vocab_size must be set (take it from the token store)")
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, d)
        self.pos = nn.Embedding(cfg.seq_len, d) if cfg.position == "learned" else None
        rotary = None
        if cfg.position == "rotary":
            rotary = Rotary(cfg.head_dim, cfg.seq_len, cfg.rope_base, cfg.rotary_frac, cfg.rope_factors)
        self.blocks = nn.ModuleList(Block(cfg, rotary, i) for i in range(cfg.depth))
        self.norm = Norm(cfg)
        self.head = None if cfg.tie_embeddings else nn.Linear(d, cfg.vocab_size, bias=False)
        self.skips = UNetSkips(cfg.depth) if cfg.unet_skips else None
        self.lambdas = ResidualLambdas(cfg.depth) if cfg.resid_lambdas else None
        self.mtp = MTPHead(d) if cfg.mtp_weight else None
        self.loops = 0
        """Extra passes through cfg.loop_range; the trainer switches them on (`looping.loops_at`)."""
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The init of `model.init` (`model/init.py`: GPT-2's or the record's), then the knobs' own init (zero
        gates, unit lambdas and norm gains) so that they start as the baseline."""
        if self.cfg.init == "record":
            init_record(self, self.cfg.depth, self.cfg.d_model)
        else:
            init_gpt2(self, self.cfg.depth)
        for m in self.modules():
            if hasattr(m, "init_weights"):
                m.init_weights()

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The final normalised hidden states (B, T, d). With a KV cache, idx holds the tokens after the
        cache's `pos` positions, which attend to the cached ones; the cache then holds them too."""
        pos = 0 if cache is None else cache.pos
        order = layer_order(self.cfg.depth, self.cfg.loop_range, self.loops)
        if cache is not None:
            assert len(cache.layers) == len(order) and idx.size(1) <= cache.room(), "cache of another shape, or full"
        x = self.embed(idx)  # (B, T, d)
        if self.pos is not None:
            x = x + self.pos(torch.arange(pos, pos + idx.size(1), device=idx.device))
        x0 = x
        saved: dict[int, torch.Tensor] = {}  # first-half outputs for the U-Net skips
        cut = self.truncated_passes()
        for n, i in enumerate(order):
            with torch.set_grad_enabled(torch.is_grad_enabled() and n >= cut):  # truncated backprop: no graph
                if self.lambdas is not None:
                    x = self.lambdas(i, x, x0)
                if self.skips is not None:
                    x = self.skips.receive(i, x, saved)
                x = self.blocks[i](x, x0, None if cache is None else cache.layers[n], pos)
                if self.skips is not None:
                    self.skips.send(i, x, saved)
        if cache is not None:
            cache.advance(idx.size(1))
        return self.norm(x)

    def truncated_passes(self) -> int:
        """How many entries of the execution order run without gradient: with model.loop_backprop='last' in training,
        every pass through the looped layers [0, b) but the last (the tiny track's recurrence: backprop through the
        last pass only, which starts from the earlier passes' detached output); 0 otherwise."""
        if self.cfg.loop_backprop != "last" or not self.training or not self.loops:
            return 0
        a, b = self.cfg.loop_range
        return b + (self.loops - 1) * (b - a)

    def new_cache(self) -> KVCache:
        """An empty KV cache for this model as it is now (its passes follow `loops`); a one-line UserError
        for a setting the cache cannot reproduce."""
        return KVCache(self.cfg, len(layer_order(self.cfg.depth, self.cfg.loop_range, self.loops)))

    def decode(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (B, V) of the next token after the cached positions and idx (B, t), adding idx to the cache;
        only the last position is unembedded."""
        return self.unembed(self.hidden(idx, cache)[:, -1])

    def unembed(self, h: torch.Tensor) -> torch.Tensor:
        weight = self.embed.weight if self.head is None else self.head.weight
        if self.cfg.softcap:  # Gemma 2: bounded logits, no runaway confidence
            return capped_linear(h, weight, self.cfg.softcap)  # (B, T, V)
        return F.linear(h, weight)  # (B, T, V)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V) without targets; with targets, the mean cross-entropy in nats (plus the
        weighted multi-token loss in training)."""
        h = self.hidden(idx)
        if targets is None:
            return self.unembed(h)
        loss = self.head_loss(h, targets)
        if self.mtp is not None and self.training:
            loss = loss + self.cfg.mtp_weight * self.mtp(h, targets, self.head_loss)
        return loss

    def head_loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the head's (soft-capped) logits of h (B, T, d) against targets (B, T)."""
        if self._fused_loss(h):
            weight = self.embed.weight if self.head is None else self.head.weight
            return linear_cross_entropy(h.flatten(0, 1), weight, targets.flatten(), self.cfg.softcap)
        return F.cross_entropy(self.unembed(h).float().flatten(0, 1), targets.flatten())

    def _fused_loss(self, h: torch.Tensor) -> bool:
        """Head and cross-entropy fused (`model/linear_ce.py`) when training on the CPU, eager or compiled
        (compiled with the plain loss instead, the CPU step was 0.92x / 1.03x eager's at tiny / small; with the
        fused one 0.95-1.07x / 1.05-1.08x: benchmarks/results/throughput_cpu.md); on GPUs the plain path, which their
        kernels and torch.compile's fusion serve."""
        return h.requires_grad and not h.is_cuda


# ---------------------------------------------------------------------------------------------
# Counting


def param_counts(model: GPT) -> dict[str, int]:
    """Total parameters and non-embedding parameters (the embedding tables, and the head when untied, excluded)."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(m.weight.numel() for m in (model.embed, model.pos, model.head) if m is not None)
    return {"total": total, "non_embedding": total - embedding}


def flops_per_token(model: GPT, loops: int | None = None) -> float:
    """Training FLOPs per token: 6 x matmul parameters (the head included, the embedding lookup not)
    plus the attention term 12 * layers * width * seq_len (PaLM / nanochat convention). Looped layers
    count once per pass (`loops` extra passes; default: the model's current setting); the multi-token
    head adds a second unembedding. Sliding windows are counted as full attention (an upper bound)."""
    cfg = model.cfg
    loops = model.loops if loops is None else loops
    # with truncated backprop the passes before the last are forward only: a third of a trained pass each
    matmul, attention = _matmul_and_attention(model, loops if cfg.loop_backprop == "all" else loops / 3, cfg.seq_len)
    if model.mtp is not None:
        matmul += cfg.vocab_size * cfg.d_model
    return 6.0 * matmul + attention


def forward_flops_per_token(model: GPT, seq_len: int | None = None, loops: int | None = None) -> float:
    """FLOPs per token of one forward pass without a backward (a distillation teacher's): a third of
    `flops_per_token`'s convention, 2 x matmul parameters plus 4 * layers * width * `seq_len` (default the
    model's), every looped pass counted whole (`loops` extra passes; default the model's current setting) and
    the multi-token head left out (a forward without targets does not run it)."""
    loops = model.loops if loops is None else loops
    matmul, attention = _matmul_and_attention(model, loops, seq_len or model.cfg.seq_len)
    return 2.0 * matmul + attention / 3


def _matmul_and_attention(model: GPT, extra: float, seq_len: int) -> tuple[float, float]:
    """Matmul parameters of one pass (the head once) and the training attention term 12 * layers * width *
    seq_len, with `extra` passes through the looped layers added."""
    cfg = model.cfg
    matmul = param_counts(model)["non_embedding"] + cfg.vocab_size * cfg.d_model  # head (tied or not)
    attention = 12 * cfg.depth * cfg.d_model * seq_len
    if cfg.loop_range is not None and extra:
        a, b = cfg.loop_range
        matmul += extra * sum(p.numel() for block in model.blocks[a:b] for p in block.parameters())
        attention += extra * (b - a) * 12 * cfg.d_model * seq_len
    return matmul, attention
