"""Ensembles: combine members' next-token distributions, memory-bounded, with the K-scaling curve in one pass.

Two ways to combine K members' distributions p_1..p_K over the vocabulary:
- logit averaging: the normalised geometric mean, softmax(mean_k log p_k) (sharper; usually better for LMs);
- probability averaging: the arithmetic mean, mean_k p_k (a proper mixture).

Memory does not grow with K: members are loaded one at a time, and each member's predictions are
added to a running sum held in a disk-backed array (the summed log-probabilities over the whole
vocabulary for logit averaging; the summed target probabilities for probability averaging). After
member k is added, the sum is the ensemble of the first k members, so one pass over the members
gives the loss of every prefix k = 1..K.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from scarce import atomic
from scarce.data.loader import eval_batches
from scarce.data.store import open_store
from scarce.errors import UserError
from scarce.model.gpt import GPT
from scarce.model.precision import inference_autocast
from scarce.progress import Lines, Progress, StatusLine, silent
from scarce.rundir import Member, check_same_tokenizer, is_run, read_config, read_json

COMBINES = ("logit", "prob")


def combine_logprobs(logprobs: torch.Tensor, combine: str = "logit") -> torch.Tensor:
    """Combine stacked member log-probs (K, ..., V) into the ensemble's log-probs (..., V)."""
    k = logprobs.shape[0]
    if combine == "logit":
        return torch.log_softmax(logprobs.mean(0), dim=-1)
    if combine == "prob":
        return torch.logsumexp(logprobs, dim=0) - math.log(k)
    raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")


@torch.no_grad()
def evaluate_ensemble(members: list[Member], tokens: np.ndarray, token_bytes: np.ndarray, seq_len: int,
                      batch_size: int = 16, max_tokens: int = 0, combine: str = "logit", device: str = "cpu",
                      cache_dir: str | Path | None = None, max_cache_bytes: int = 2 << 30,
                      progress: Lines | None = None) -> dict:
    """Loss (nats/token, bits/byte) of every prefix k = 1..K of `members` and of each member alone,
    in one pass over the members, with one member in memory at a time. Also the summed NLL of every
    window of seq_len targets (`prefix_window_nll`, `member_window_nll`: K rows), for paired bootstraps.

    Logit averaging needs the summed log-probs over the whole vocabulary, 4 * V bytes per token on
    disk. A split whose sum would exceed `max_cache_bytes` is evaluated in blocks, each a full pass
    over the members (members are then loaded once per block). `progress`: a status line for the tokens scored
    (summed over members), their rate and the ETA."""
    if combine not in COMBINES:
        raise UserError(f"combine must be one of {', '.join(COMBINES)}, got {combine!r}")
    if not members:
        raise UserError("an ensemble needs at least one member")
    check_same_tokenizer([m.run_dir for m in members])
    windows = (len(tokens) - 1) // seq_len
    windows = min(windows, max(1, max_tokens // seq_len)) if max_tokens else windows
    vocab = read_config(members[0].run_dir).model.vocab_size
    per_window = 4 * seq_len * (vocab if combine == "logit" else 1)
    block = max(batch_size, max_cache_bytes // per_window // batch_size * batch_size)
    ens_parts, own_parts = [], []
    n = nbytes = 0
    bar = Progress(progress() if progress else StatusLine(silent), f"evaluating {len(members)} model(s)",
                   len(members) * max(windows, 1) * seq_len)
    for start in range(0, max(windows, 1), block):
        part = tokens[start * seq_len:min(start + block, windows) * seq_len + 1]
        batches = list(eval_batches(part, seq_len, batch_size))
        n += sum(y.numel() for _, y in batches)
        nbytes += sum(int(token_bytes[y.numpy()].sum()) for _, y in batches)
        ens, own = _one_pass(members, batches, vocab, combine, device, cache_dir, bar)
        ens_parts.append(ens)
        own_parts.append(own)
    bar.close()
    prefix_windows, member_windows = np.concatenate(ens_parts, axis=1), np.concatenate(own_parts, axis=1)
    prefix_nll, member_nll = prefix_windows.sum(1), member_windows.sum(1)
    bits = math.log(2) * max(nbytes, 1)
    return {
        "combine": combine, "tokens": n, "bytes": nbytes,
        "prefix_loss": [x / n for x in prefix_nll], "prefix_bpb": [x / bits for x in prefix_nll],
        "member_loss": [x / n for x in member_nll], "member_bpb": [x / bits for x in member_nll],
        "window_tokens": seq_len, "prefix_window_nll": prefix_windows, "member_window_nll": member_windows,
    }


def _one_pass(members: list[Member], batches: list, vocab: int, combine: str, device: str,
              cache_dir, bar: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Summed NLL per window (K, windows) of each prefix ensemble and of each member over `batches`, adding
    members one by one to a running sum kept in a disk-backed array (deleted afterwards)."""
    n = sum(y.numel() for _, y in batches)
    windows = sum(y.shape[0] for _, y in batches)
    ens, own = np.zeros((len(members), windows)), np.zeros((len(members), windows))
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="ensemble-acc-") as tmp:
        shape = (n, vocab) if combine == "logit" else (n,)
        acc = np.lib.format.open_memmap(Path(tmp) / "acc.npy", mode="w+", dtype=np.float32, shape=shape)
        for k, member in enumerate(members, start=1):
            model = member.load(device)
            if model.cfg.vocab_size != vocab:
                raise UserError(f"member {member.run_dir} has vocabulary {model.cfg.vocab_size}, not {vocab}")
            ens[k - 1], own[k - 1] = _add_member(model, batches, acc, k, combine, device, bar)
            del model
        del acc
    return ens, own


def _add_member(model: GPT, batches, acc: np.ndarray, k: int, combine: str,
                device: str, bar: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Add one member to the running sum; returns the per-window NLL of the k-prefix ensemble and of the member."""
    ens_nll, own_nll, row = [], [], 0
    for x, y in batches:
        with inference_autocast(device):
            logits = model(x.to(device))
        lp = torch.log_softmax(logits.float(), dim=-1).flatten(0, 1).cpu()  # (b*T, V)
        target = y.flatten()
        rows = slice(row, row + target.numel())
        row += target.numel()
        own = lp.gather(1, target[:, None]).squeeze(1)  # (b*T,)
        own_nll.append(-own.double().view(y.shape).sum(1))  # (b,)
        if combine == "logit":
            total = lp if k == 1 else torch.from_numpy(acc[rows]) + lp
            acc[rows] = total.numpy()
            ens = torch.log_softmax(total / k, dim=-1).gather(1, target[:, None]).squeeze(1)
        else:
            total = own.exp() if k == 1 else torch.from_numpy(acc[rows]) + own.exp()
            acc[rows] = total.numpy()
            ens = torch.log(total / k)
        ens_nll.append(-ens.double().view(y.shape).sum(1))
        bar.add(target.numel())
    return torch.cat(ens_nll).numpy(), torch.cat(own_nll).numpy()


# ---------------------------------------------------------------------------------------------
# The learned prior: mixture weights over any set of members, fitted on select

PRIOR_STEPS = 300
PRIOR_LR = 0.5
"""NanoGPT Slowrun's unlimited record (`gradient_select.py`): AdamW on the mixture's logits, 300 steps at lr 0.5."""


@torch.no_grad()
def member_token_logprobs(members: list[Member], tokens: np.ndarray, seq_len: int, batch_size: int = 16,
                          max_tokens: int = 0, device: str = "cpu", progress: Lines | None = None) -> np.ndarray:
    """(K, windows, seq_len) float32: each member's log-probability of every target token of a split's windows,
    one member in memory at a time. `progress`: a status line for the tokens scored, their rate and the ETA."""
    check_same_tokenizer([m.run_dir for m in members])
    batches = list(eval_batches(tokens, seq_len, batch_size, max_tokens))
    out = np.empty((len(members), sum(y.shape[0] for _, y in batches), seq_len), dtype=np.float32)
    bar = Progress(progress() if progress else StatusLine(silent), f"scoring {len(members)} model(s)", out.size)
    vocab = None
    for k, member in enumerate(members):
        model = member.load(device)
        vocab = vocab or model.cfg.vocab_size
        if model.cfg.vocab_size != vocab:
            raise UserError(f"member {member.run_dir} has vocabulary {model.cfg.vocab_size}, not {vocab}")
        row = 0
        for x, y in batches:
            with inference_autocast(device):
                logits = model(x.to(device))
            lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, y.to(device)[..., None]).squeeze(-1)  # (b, T)
            out[k, row:row + y.shape[0]] = lp.cpu().numpy()
            row += y.shape[0]
            bar.add(y.numel())
        del model
    bar.close()
    return out


def mixture_nll(logprobs: np.ndarray | torch.Tensor, weights) -> torch.Tensor:
    """Per-token NLL of the probability mixture sum_k w_k p_k (weights summing to 1) of members' target
    log-probs (K, ...)."""
    lp = torch.as_tensor(logprobs, dtype=torch.float64)
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64)).view(-1, *([1] * (lp.ndim - 1)))
    return -torch.logsumexp(lp + torch.log(w), dim=0)


def fit_prior(logprobs: np.ndarray, steps: int = PRIOR_STEPS, lr: float = PRIOR_LR, seed: int = 0) -> np.ndarray:
    """Mixture weights softmax(a) over K members minimising the mean NLL of sum_k w_k p_k on the tokens given
    (the select split's: never val's), by AdamW on the logits a with the gradient clipped to norm 1."""
    lp = torch.as_tensor(logprobs, dtype=torch.float32).reshape(len(logprobs), -1)  # (K, N)
    generator = torch.Generator().manual_seed(seed)
    logits = (1e-4 * torch.randn(len(lp), generator=generator)).requires_grad_(True)
    opt = torch.optim.AdamW([logits], lr=lr, weight_decay=0.0)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = -torch.logsumexp(lp + torch.log_softmax(logits, 0)[:, None], dim=0).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([logits], 1.0)
        opt.step()
    return torch.softmax(logits.detach().double(), 0).numpy()


def top_k(weights: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    """The `k` members of largest weight (in member order) and their weights renormalised to sum to 1."""
    if not 1 <= k <= len(weights):
        raise UserError(f"top-K: K must be in 1..{len(weights)} (the members), got {k}")
    chosen = sorted(np.argsort(-np.asarray(weights), kind="stable")[:k].tolist())
    w = np.asarray(weights, dtype=np.float64)[chosen]
    return chosen, w / w.sum()


def learned_prior(members: list[Member], select: np.ndarray, val: np.ndarray, seq_len: int, k_values=(),
                  batch_size: int = 16, max_tokens: int = 0, device: str = "cpu", steps: int = PRIOR_STEPS,
                  lr: float = PRIOR_LR) -> dict:
    """Fit mixture weights over `members` on `select`, choose among the top-K mixtures (every K of `k_values`,
    and all members) the one of lowest select loss, and report on `val` that mixture and the uniform mixture of
    the same members, each once, with the per-window NLLs of both (for paired intervals)."""
    if not members:
        raise UserError("a prior needs at least one member")
    ks = sorted({int(k) for k in k_values} | {len(members)})
    if ks[0] < 1 or ks[-1] > len(members):
        bad = ks[0] if ks[0] < 1 else ks[-1]
        raise UserError(f"top-K: K must be in 1..{len(members)} (the members), got {bad}")
    fit = member_token_logprobs(members, select, seq_len, batch_size, max_tokens, device)
    held = member_token_logprobs(members, val, seq_len, batch_size, max_tokens, device)
    return prior_of(fit, held, ks, steps, lr)


def prior_of(fit: np.ndarray, held: np.ndarray, ks: list[int], steps: int = PRIOR_STEPS,
             lr: float = PRIOR_LR) -> dict:
    """`learned_prior` on members' target log-probs (K, windows, T) of select (`fit`) and val (`held`)."""
    seq_len = fit.shape[-1]
    weights = fit_prior(fit, steps, lr)
    uniform = np.full(len(fit), 1.0 / len(fit))
    candidates = {k: top_k(weights, k) for k in ks}
    select_loss = {k: float(mixture_nll(fit[idx], w).mean()) for k, (idx, w) in candidates.items()}
    best = min(ks, key=lambda k: (select_loss[k], k))
    select_uniform = float(mixture_nll(fit, uniform).mean())
    chosen, w = candidates[best]
    prior_windows = mixture_nll(held[chosen], w).sum(-1).numpy()
    uniform_windows = mixture_nll(held, uniform).sum(-1).numpy()
    n = held.shape[1] * seq_len
    return {"combine": "prob", "weights": weights.tolist(), "k_values": ks, "select_loss": select_loss,
            "select_loss_uniform": select_uniform,
            "k": best, "members": chosen, "member_weights": w.tolist(),
            "val_loss": float(prior_windows.sum() / n), "val_loss_uniform": float(uniform_windows.sum() / n),
            "window_tokens": seq_len, "prior_window_nll": prior_windows, "uniform_window_nll": uniform_windows}


def write_evaluation(out: str | Path, members: list[Member], combine: str = "logit", batch_size: int = 16,
                     max_tokens: int = 0, split: str = "val", extra: dict | None = None, device: str = "cpu",
                     result: dict | None = None) -> dict:
    """Evaluate an ensemble on a split of the first member's token store and write OUT/ensemble.json.
    `result`: that evaluation already made (`evaluate_ensemble` of these members on the whole split with
    `combine`), written instead of evaluating again."""
    cfg = read_config(members[0].run_dir)
    store = open_store(cfg.data)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    r = result or evaluate_ensemble(members, store.split(split), store.token_bytes(), cfg.model.seq_len,
                                    batch_size, max_tokens, combine, device, cache_dir=out)
    if r["combine"] != combine:
        raise ValueError(f"an evaluation combined by {r['combine']} written as {combine}")
    report = {
        "combine": combine, "split": split, "tokens": r["tokens"], "data": str(store.path), **(extra or {}),
        "members": [{"run_dir": str(m.run_dir), "weights": str(m.weights), f"{split}_loss": loss, f"{split}_bpb": bpb}
                    for m, loss, bpb in zip(members, r["member_loss"], r["member_bpb"])],
        f"prefix_{split}_loss": r["prefix_loss"], f"prefix_{split}_bpb": r["prefix_bpb"],
    }
    atomic.write_json(out / "ensemble.json", report)
    return report


def read_ensemble(folder: str | Path) -> tuple[list[Member], str]:
    """The members (run and weights) and the combine rule of an ensemble folder's ensemble.json (as
    `scarce ensemble` writes it), checked: a one-line UserError names what is wrong."""
    path = Path(folder) / "ensemble.json"
    if not path.is_file():
        raise UserError(f"{folder} holds no ensemble.json; make it with `scarce ensemble --out {folder} ...`")
    report = read_json(path)
    members = report.get("members") if isinstance(report, dict) else None
    if not isinstance(members, list) or not members or not all(
            isinstance(m, dict) and isinstance(m.get("run_dir"), str) for m in members):
        raise UserError(f"{path} lists no members (expected an object with members: [{{run_dir: ...}}, ...])")
    combine = report.get("combine", "logit")
    if combine not in COMBINES:
        raise UserError(f"{path}: combine must be one of {', '.join(COMBINES)}, got {combine!r}")
    out = []
    for m in members:
        if not is_run(m["run_dir"]):
            raise UserError(f"{path}: member {m['run_dir']} is not a run directory (no config.json)")
        out.append(Member(Path(m["run_dir"]), Path(m["weights"])) if isinstance(m.get("weights"), str)
                   else Member.of_run(m["run_dir"]))
    return out, combine
