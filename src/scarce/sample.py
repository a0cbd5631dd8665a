"""Sampling text from a run or an ensemble: temperature, top-k, a seed, a token budget.

Used for reading what a model learned and for sequence-level distillation (synthetic text from a
teacher, written as a token store). Generation starts from the end-of-text token, so samples are
unconditional documents. An ensemble samples from its combined distribution (`scarce.ensemble`),
which needs every member in memory at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scarce.data.store import TokenStore, open_store, replace_train
from scarce.ensemble import combine_logprobs
from scarce.model.precision import inference_autocast
from scarce.rundir import load_model, read_config


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
        with inference_autocast(device):
            last = [m(window)[:, -1] for m in models]
        lps = torch.stack([torch.log_softmax(x.float(), dim=-1) for x in last])  # (K, S, V)
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
    """Text sampled from one run or the ensemble of several (their select-chosen weights)."""
    store = open_store(read_config(run_dirs[0]).data)
    models = [load_model(d, device) for d in run_dirs]
    tok = store.tokenizer()
    ids = generate(models, tok.eot_id, tokens, temperature, top_k, seed, combine, device)
    return tok.decode(ids[0].tolist())


def synthesize(teachers: list, out, tokens: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
               streams: int = 64, device: str = "cpu", combine: str = "logit") -> TokenStore:
    """A token store at `out` whose train split is `tokens` tokens sampled unconditionally from the
    teacher (the ensemble of several), and whose tokenizer, select and val are the teacher's data's:
    the synthetic half of sequence-level distillation (Kim & Rush, 2016)."""
    base = open_store(read_config(teachers[0]).data)
    models = [load_model(t, device) for t in teachers]
    per_stream = -(-tokens // streams)
    ids = generate(models, base.eot_id, per_stream, temperature, top_k, seed, combine, device, streams)
    train = np.concatenate([[base.eot_id], ids.flatten().numpy()])[:tokens]
    request = {**base.manifest["request"], "train_tokens": int(tokens), "synthetic_seed": seed}
    synthetic = {"teachers": [str(t) for t in teachers], "temperature": temperature, "top_k": top_k, "seed": seed,
                 "streams": streams}
    return replace_train(base, Path(out), train, request=request, synthetic=synthetic)
