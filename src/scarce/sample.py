"""Sampling text from a run or a logit-averaged ensemble: temperature, top-k, a seed, a token budget.

Used for reading what a model learned and for sequence-level distillation (synthetic text from a
teacher). Generation starts from the end-of-text token, so samples are unconditional documents.
An ensemble samples from softmax(mean_k log p_k), which needs every member in memory at once.
"""

from __future__ import annotations

import torch

from scarce.ensemble import combine_logprobs


@torch.no_grad()
def generate(models: list, start: int, tokens: int, temperature: float = 1.0, top_k: int = 0,
             seed: int = 0, combine: str = "logit", device: str = "cpu") -> list[int]:
    """Sample `tokens` ids after `start` from one model or the ensemble of `models` (KV cache-free:
    each step re-runs the last seq_len tokens, fine for small models)."""
    if temperature < 0:
        raise ValueError("temperature: must be >= 0 (0 is greedy)")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    seq_len = min(m.cfg.seq_len for m in models)
    ids = torch.tensor([[start]], device=device)  # (1, t)
    out = []
    for _ in range(tokens):
        window = ids[:, -seq_len:]
        lps = torch.stack([torch.log_softmax(m(window)[:, -1].float(), dim=-1) for m in models])  # (K, 1, V)
        lp = combine_logprobs(lps, combine)[0].cpu()  # (V,)
        nxt = _pick(lp, temperature, top_k, gen)
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]], device=device)], dim=1)
    return out


def _pick(logprobs: torch.Tensor, temperature: float, top_k: int, gen: torch.Generator) -> int:
    if temperature == 0:
        return int(logprobs.argmax())
    logits = logprobs / temperature
    if top_k and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen))


def sample(run_dirs: list, tokens: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
           combine: str = "logit", device: str = "cpu") -> str:
    """Text sampled from one run or the ensemble of several (their best-on-select weights)."""
    from scarce.data.store import open_store
    from scarce.ensemble import load_member, read_config

    store = open_store(read_config(run_dirs[0]).data)
    models = [load_member(d, device) for d in run_dirs]
    tok = store.tokenizer()
    ids = generate(models, tok.eot_id, tokens, temperature, top_k, seed, combine, device)
    return tok.decode(ids)
