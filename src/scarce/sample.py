"""Sampling text from a run or a logit-averaged ensemble: temperature, top-k, a seed, a token budget.

Used for reading what a model learned and for sequence-level distillation (synthetic text from a
teacher). Generation starts from the end-of-text token, so samples are unconditional documents.
An ensemble samples from softmax(mean_k log p_k), which needs every member in memory at once.
"""

from __future__ import annotations

import torch

from scarce.ensemble import combine_logprobs


@torch.no_grad()
def generate(models: list, start: int, tokens: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
             combine: str = "logit", device: str = "cpu", streams: int = 1) -> torch.Tensor:
    """Sample `tokens` ids after `start` in each of `streams` independent rows, from one model or the
    ensemble of `models`: (streams, tokens). No KV cache: each step re-runs the last seq_len tokens,
    fine for the small models this is for."""
    if temperature < 0:
        raise ValueError("temperature: must be >= 0 (0 is greedy)")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    seq_len = min(m.cfg.seq_len for m in models)
    ids = torch.full((streams, 1), start, device=device)  # (S, t)
    for _ in range(tokens):
        window = ids[:, -seq_len:]
        lps = torch.stack([torch.log_softmax(m(window)[:, -1].float(), dim=-1) for m in models])  # (K, S, V)
        nxt = _pick(combine_logprobs(lps, combine).cpu(), temperature, top_k, gen)  # (S,)
        ids = torch.cat([ids, nxt[:, None].to(device)], dim=1)
    return ids[:, 1:].cpu()


def _pick(logprobs: torch.Tensor, temperature: float, top_k: int, gen: torch.Generator) -> torch.Tensor:
    """One token per row of logprobs (S, V): greedy at temperature 0, else sampled (among the top k)."""
    if temperature == 0:
        return logprobs.argmax(-1)
    logits = logprobs / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (S, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen).squeeze(1)


def sample(run_dirs: list, tokens: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
           combine: str = "logit", device: str = "cpu") -> str:
    """Text sampled from one run or the ensemble of several (their best-on-select weights)."""
    from scarce.data.store import open_store
    from scarce.ensemble import load_member, read_config

    store = open_store(read_config(run_dirs[0]).data)
    models = [load_member(d, device) for d in run_dirs]
    tok = store.tokenizer()
    ids = generate(models, tok.eot_id, tokens, temperature, top_k, seed, combine, device)
    return tok.decode(ids[0].tolist())
