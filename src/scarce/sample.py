"""Generation from a run or an ensemble, through each model's KV cache.

Rows of a batch start from prompts of one length (the end-of-text token alone: unconditional documents; or
that token and the start of a document) and sample together, with temperature, top-k and top-p (nucleus)
filtering, from one model or from the ensemble's combined distribution (logit or probability average,
`scarce.ensemble`). Each member keeps its own cache, so an ensemble holds every member and its cache in memory
at once (K x (weights + 2 x passes x rows x seq_len x width) floats). The sampler draws on the CPU from a
seeded generator: the same seed gives the same text on any device. A generation longer than the context
restarts the caches from the last half context of tokens (the models never saw positions past seq_len).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from scarce.data.store import open_store
from scarce.ensemble import COMBINES, combine_logprobs
from scarce.errors import UserError
from scarce.model.gpt import GPT
from scarce.model.precision import inference_autocast
from scarce.rundir import check_same_tokenizer, load_model, read_config


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    """Softmax temperature; 0 is greedy."""
    top_k: int = 0
    """Sample among the k likeliest tokens; 0 means all."""
    top_p: float = 1.0
    """Sample from the smallest set of likeliest tokens whose probability reaches p (nucleus); 1 means all."""
    combine: str = "logit"
    """How an ensemble's members combine: 'logit' (mean log-probability, renormalised) or 'prob' (mean probability)."""

    def __post_init__(self):
        if not 0 <= self.temperature < float("inf"):
            raise UserError(f"temperature must be a finite number >= 0 (0 is greedy), got {self.temperature}")
        if self.top_k < 0:
            raise UserError(f"top-k must be >= 0 (0 means all tokens), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.combine not in COMBINES:
            raise UserError(f"combine must be one of {', '.join(COMBINES)}, got {self.combine!r}")

    def as_dict(self) -> dict:
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "combine": self.combine}


def filtered_logprobs(logprobs: torch.Tensor, s: Sampling) -> torch.Tensor:
    """The distribution a row samples from (S, V) as log-probs: tempered, cut to the top k and the top p."""
    logits = logprobs.float() / s.temperature
    if s.top_k and s.top_k < logits.shape[-1]:
        kth = torch.topk(logits, s.top_k, dim=-1).values[:, -1:]  # (S, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if s.top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = probs.cumsum(-1) - probs  # mass of the likelier tokens
        drop = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, order, before >= s.top_p)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.log_softmax(logits, dim=-1)


def pick(logprobs: torch.Tensor, s: Sampling, gen: torch.Generator) -> torch.Tensor:
    """One token per row of logprobs (S, V): greedy at temperature 0, else sampled from the filtered distribution
    by inverting its CDF at one uniform draw per row (`torch.multinomial` draws V exponentials per row: 6 ms of a
    25 ms decoding step at 64 rows x 4096 tokens). A token of probability 0 has an empty interval: never drawn."""
    if s.temperature == 0:
        return logprobs.argmax(-1)
    cdf = filtered_logprobs(logprobs, s).double().exp().cumsum(-1)  # (S, V)
    u = torch.rand(cdf.size(0), 1, generator=gen, dtype=torch.float64) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=cdf.size(1) - 1)


def check_models(models: list[GPT]) -> None:
    """An ensemble samples from one vocabulary: a one-line error otherwise."""
    vocabs = {m.cfg.vocab_size for m in models}
    if len(vocabs) > 1:
        raise UserError(f"the models have different vocabularies ({', '.join(map(str, sorted(vocabs)))}); "
                        "an ensemble samples from one (give runs trained on the same token store)")


def available_memory(device: str) -> int | None:
    """Bytes that can still be allocated on `device` (MemAvailable on Linux CPUs, free memory on CUDA); None
    when it cannot be told."""
    if str(device).startswith("cuda"):
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def decode_bytes(models: list[GPT], rows: int, prompt: int) -> int:
    """A generous estimate of the memory `rows` rows decoded together take: each model's KV cache (fp32, every
    pass, the whole context) and the prompt's activations, and the (K + 3) fp32/fp64 rows of vocabulary the
    combination and the sampler hold per step."""
    per_row = 0
    for m in models:
        c = m.cfg
        passes = len(m.new_cache().layers)
        per_row += 4 * passes * 2 * c.n_kv_heads * c.seq_len * c.head_dim  # keys and values
        per_row += 4 * prompt * (8 * c.d_model + c.n_heads * prompt)  # the prompt's pass: hidden states, scores
    return rows * (per_row + 8 * c.vocab_size * (len(models) + 3))


def check_decode_memory(models: list[GPT], rows: int, prompt: int, device: str) -> None:
    """A one-line error, before any allocation, when decoding `rows` rows at once would not fit in memory (the
    process would otherwise fail deep in an allocation, or be killed by the system)."""
    need, have = decode_bytes(models, rows, prompt), available_memory(device)
    if have is not None and need > have:
        raise UserError(f"{rows:,} rows decoded together need about {need / 2**30:,.1f} GiB of memory, more than the "
                        f"{have / 2**30:,.1f} GiB available on {device}; generate fewer rows at once "
                        "(sample --rows, synth --streams)")


@torch.no_grad()
def decode_steps(models: list[GPT], prompts: torch.Tensor, sampling: Sampling = Sampling(), seed: int = 0,
                 device: str = "cpu") -> Iterator[torch.Tensor]:
    """The next token of each row (S,) after prompts (S, P), step after step, for as long as the caller reads.
    Every model runs on `device` with its own KV cache (bf16 autocast on CUDA)."""
    check_models(models)
    seq_len = min(m.cfg.seq_len for m in models)
    if prompts.dim() != 2 or prompts.size(1) < 1:
        raise UserError("prompts must be rows of at least one token")
    if prompts.size(1) >= seq_len:
        raise UserError(f"a prompt of {prompts.size(1)} tokens leaves no room to generate in the context of "
                        f"{seq_len} tokens; use a prefix shorter than seq_len")
    check_decode_memory(models, prompts.size(0), prompts.size(1), device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    caches = [m.new_cache() for m in models]
    recent, pending = prompts.to(device), prompts.to(device)  # the context so far; what the caches lack
    while True:
        if caches[0].pos + pending.size(1) > seq_len:  # past the context: restart from its last half
            pending = recent[:, -(seq_len // 2):]
            caches = [m.new_cache() for m in models]
        with inference_autocast(device):
            lps = torch.stack([torch.log_softmax(m.decode(pending, c).float(), dim=-1) for m, c in zip(models, caches)])
        nxt = pick((lps[0] if len(models) == 1 else combine_logprobs(lps, sampling.combine)).cpu(), sampling, gen)
        yield nxt
        pending = nxt[:, None].to(device)
        recent = torch.cat([recent[:, -seq_len:], pending], dim=1)


def generate(models: list[GPT], prompts: torch.Tensor, tokens: int, sampling: Sampling = Sampling(), seed: int = 0,
             device: str = "cpu") -> torch.Tensor:
    """`tokens` sampled ids after each prompt row: (S, tokens), on the CPU."""
    if tokens < 0:
        raise UserError(f"the number of tokens to generate must be >= 0, got {tokens}")
    steps = decode_steps(models, prompts, sampling, seed, device) if tokens else iter(())
    out = [next(steps) for _ in range(tokens)]
    return torch.stack(out, dim=1) if out else torch.zeros(prompts.size(0), 0, dtype=torch.long)


def load_models(run_dirs: list, device: str = "cpu") -> list[GPT]:
    """The select-chosen weights of each run, on one vocabulary (a one-line error otherwise)."""
    models = [load_model(d, device) for d in run_dirs]
    check_models(models)
    check_same_tokenizer(run_dirs)
    return models


def sample(run_dirs: list, tokens: int, sampling: Sampling = Sampling(), seed: int = 0, device: str = "cpu",
           rows: int = 1) -> list[str]:
    """Texts sampled unconditionally (after an end-of-text token) from one run or the ensemble of several."""
    models = load_models(run_dirs, device)
    check_decode_memory(models, rows, 1, device)
    tok = open_store(read_config(run_dirs[0]).data).tokenizer()
    ids = generate(models, torch.full((rows, 1), tok.eot_id), tokens, sampling, seed, device)
    return [tok.decode(row.tolist()) for row in ids]
