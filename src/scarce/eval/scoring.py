"""Scoring text with a run or an ensemble, over the run's own tokenizer: the log-likelihood of a
continuation given a context, of a whole text, and greedy generation. This is what
lm-evaluation-harness asks of a model (`scarce.eval.harness` adapts it); it does not need lm-eval.

Every text starts after an end-of-text token, as every document of a token store does. A request
becomes windows of at most seq_len input tokens: a context longer than the model sees is cut on the
left, and a scored text longer than one window is split into chunks of seq_len targets, each with as
much left context as fits (lm-eval's rolling scheme), so every scored token is predicted exactly once.

An ensemble is one model whose next-token distribution is the members' combination (`scarce.ensemble`:
logit or probability averaging). Memory stays flat in K: windows are scored in blocks, and for each
block the members are loaded one at a time, each adding its log-probabilities at the block's scored
positions to a running sum over the vocabulary (at most `block_bytes`); a single model is loaded once.
Greedy generation needs every member at every step, so `generate` holds all K members at once (as
`scarce sample` does); it has no KV cache and re-runs the last seq_len tokens per generated token.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from scarce.data.store import open_store
from scarce.ensemble import COMBINES
from scarce.errors import UserError
from scarce.model.gpt import GPT
from scarce.model.precision import inference_autocast
from scarce.rundir import Member, check_same_tokenizer, load_weights, read_config
from scarce.sample import Sampling, decode_steps


@dataclass(frozen=True)
class Window:
    """Input tokens and the targets of its last len(targets) positions."""

    inputs: list[int]
    targets: list[int]


def windows(tokens: list[int], first: int, seq_len: int) -> Iterator[Window]:
    """The windows that predict tokens[first:] once each, in chunks of at most seq_len targets, each
    chunk with as much left context as fits in seq_len inputs (first >= 1: token 0 is never predicted)."""
    for a in range(first, len(tokens), seq_len):
        b = min(a + seq_len, len(tokens))
        yield Window(tokens[max(0, b - 1 - seq_len):b - 1], tokens[a:b])


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def finish(total: torch.Tensor, k: int, combine: str) -> torch.Tensor:
    """The ensemble's log-probs (N, V) from the running sum over k members: the sum of log-probs
    (logit averaging) or their log-sum-exp (probability averaging)."""
    if combine == "logit":
        return torch.log_softmax(total / k, dim=-1)
    return total - math.log(k)


def add_member(total: torch.Tensor | None, logprobs: torch.Tensor, combine: str) -> torch.Tensor:
    if total is None:
        return logprobs
    return total + logprobs if combine == "logit" else torch.logaddexp(total, logprobs)


class Scorer:
    """Log-likelihoods and greedy continuations from one run or the ensemble of several members."""

    def __init__(self, members: list[Member], combine: str = "logit", device: str = "cpu", batch_size: int = 16,
                 block_bytes: int = 1 << 30) -> None:
        if not members:
            raise UserError("nothing to evaluate: no run or ensemble member given")
        if combine not in COMBINES:
            raise UserError(f"combine must be one of {', '.join(COMBINES)}, got {combine!r}")
        if batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {batch_size}")
        for m in members:
            if not m.weights.is_file():
                raise UserError(f"{m.run_dir} has no weights at {m.weights}; finish or resume the run "
                                f"(scarce train --resume {m.run_dir})")
        cfgs = [read_config(m.run_dir).model for m in members]
        if len({c.vocab_size for c in cfgs}) > 1:
            raise UserError("ensemble members have different vocabularies: "
                            + ", ".join(f"{m.run_dir}: {c.vocab_size}" for m, c in zip(members, cfgs)))
        check_same_tokenizer([m.run_dir for m in members])
        store = open_store(read_config(members[0].run_dir).data)
        self.tokenizer, self.eot = store.tokenizer(), store.eot_id
        if self.tokenizer.vocab_size > cfgs[0].vocab_size:
            raise UserError(f"the tokenizer of {store.path} has {self.tokenizer.vocab_size} tokens, more than the "
                            f"model's vocabulary of {cfgs[0].vocab_size}")
        self.members, self.combine, self.device, self.batch_size = members, combine, device, batch_size
        self.seq_len = min(c.seq_len for c in cfgs)
        self.vocab = cfgs[0].vocab_size
        self.block_tokens = max(1, block_bytes // (4 * self.vocab))
        self._resident: GPT | None = None
        if len(members) == 1:  # damaged weights are an error now, not in the middle of an evaluation
            self._resident_model()
        else:
            for m in members:
                load_weights(m.weights)

    # -- the three requests -------------------------------------------------------------------------

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        """log P(continuation | context) and whether greedy decoding produces it, per (context,
        continuation). Context and context + continuation are tokenized as wholes; the tokens after
        their common prefix are scored (a token straddling the boundary belongs to the continuation)."""
        wholes = self._encode([c + x for c, x in pairs])
        contexts = self._encode([c for c, _ in pairs])
        requests = [([self.eot] + whole, 1 + common_prefix(ctx, whole)) for ctx, whole in zip(contexts, wholes)]
        return self._score_requests(requests)

    def loglikelihood_rolling(self, texts: list[str]) -> list[float]:
        """log P(text) after an end-of-text token, every token predicted once (rolling windows)."""
        requests = [([self.eot] + ids, 1) for ids in self._encode(texts)]
        return [lp for lp, _ in self._score_requests(requests)]

    @torch.no_grad()
    def generate(self, contexts: list[str], until: list[list[str]], max_tokens: list[int]) -> list[str]:
        """Greedy continuations of each context, cut before the first stop string (or end-of-text),
        at most max_tokens tokens each. Contexts of one token length decode together through the KV cache
        (`scarce.sample.decode_steps`), at most batch_size at a time; a context longer than the window keeps
        its last seq_len - 1 tokens."""
        models = [self._resident_model()] if len(self.members) == 1 else [m.load(self.device) for m in self.members]
        rows = [([self.eot] + ids)[-(self.seq_len - 1):] for ids in self._encode(contexts)]
        out: list[str] = [""] * len(rows)
        by_length: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            by_length.setdefault(len(row), []).append(i)
        for same in by_length.values():
            for start in range(0, len(same), self.batch_size):
                span = same[start:start + self.batch_size]
                texts = self._generate_batch(models, [rows[i] for i in span], [until[i] for i in span],
                                             [max_tokens[i] for i in span])
                for i, text in zip(span, texts):
                    out[i] = text
        return out

    # -- scoring ----------------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer.encode_batch(texts) if texts else []

    def _score_requests(self, requests: list[tuple[list[int], int]]) -> list[tuple[float, bool]]:
        """Sum of target log-probs and all-greedy flag per (tokens, first scored position)."""
        wins, owner = [], []
        for i, (tokens, first) in enumerate(requests):
            for w in windows(tokens, first, self.seq_len):
                wins.append(w)
                owner.append(i)
        total, greedy = [0.0] * len(requests), [True] * len(requests)
        for i, (lp, hit) in zip(owner, self.score(wins)):
            total[i] += lp
            greedy[i] = greedy[i] and hit
        return list(zip(total, greedy))

    @torch.no_grad()
    def score(self, wins: list[Window]) -> list[tuple[float, bool]]:
        """Sum of the targets' log-probs under the (ensemble) model and whether each target is the argmax,
        per window. Longest windows first, so a batch pads little."""
        order = sorted(range(len(wins)), key=lambda i: len(wins[i].inputs), reverse=True)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        out: list[tuple[float, bool]] = [(0.0, True)] * len(wins)
        for block in self._blocks(batches, wins):
            for idx, results in zip(block, self._score_block([[wins[i] for i in b] for b in block])):
                for i, r in zip(idx, results):
                    out[i] = r
        return out

    def _blocks(self, batches: list[list[int]], wins: list[Window]) -> Iterator[list[list[int]]]:
        """Runs of batches whose scored targets fit the running sum's budget (at least one batch each)."""
        block, n = [], 0
        for b in batches:
            size = sum(len(wins[i].targets) for i in b)
            if block and n + size > self.block_tokens:
                yield block
                block, n = [], 0
            block.append(b)
            n += size
        if block:
            yield block

    def _score_block(self, batches: list[list[Window]]) -> list[list[tuple[float, bool]]]:
        totals: list[torch.Tensor | None] = [None] * len(batches)
        for model in self._models():
            for b, batch in enumerate(batches):
                totals[b] = add_member(totals[b], self._logprobs(model, batch), self.combine)
        out = []
        for total, batch in zip(totals, batches):
            lp = finish(total, len(self.members), self.combine)  # (N, V)
            targets = torch.tensor([t for w in batch for t in w.targets], device=lp.device)  # (N,)
            hit = (lp.argmax(-1) == targets).cpu()
            tlp = lp.gather(1, targets[:, None]).squeeze(1).double().cpu()
            sizes = [len(w.targets) for w in batch]
            out.append([(float(a.sum()), bool(h.all())) for a, h in zip(tlp.split(sizes), hit.split(sizes))])
        return out

    def _logprobs(self, model: GPT, batch: list[Window]) -> torch.Tensor:
        """Log-probs (N, V) at the scored positions of a batch of windows, right-padded (the model is causal,
        so padding after a window's end changes nothing before it)."""
        x = torch.full((len(batch), max(len(w.inputs) for w in batch)), self.eot, dtype=torch.long)  # (B, T)
        rows, cols = [], []
        for j, w in enumerate(batch):
            x[j, :len(w.inputs)] = torch.tensor(w.inputs)
            rows += [j] * len(w.targets)
            cols += range(len(w.inputs) - len(w.targets), len(w.inputs))
        with inference_autocast(self.device):
            logits = model(x.to(self.device))  # (B, T, V)
        return torch.log_softmax(logits[rows, cols].float(), dim=-1)  # (N, V)

    def _models(self) -> Iterator[GPT]:
        """Each member in turn, one in memory at a time (a single model stays loaded)."""
        if len(self.members) == 1:
            yield self._resident_model()
            return
        for member in self.members:
            model = member.load(self.device)
            yield model
            del model

    def _resident_model(self) -> GPT:
        if self._resident is None:
            self._resident = self.members[0].load(self.device)
        return self._resident

    # -- generation -------------------------------------------------------------------------------

    def _generate_batch(self, models: list[GPT], rows: list[list[int]], until: list[list[str]],
                        max_tokens: list[int]) -> list[str]:
        """Greedy decoding of rows of one length until each meets a stop string, end-of-text or its budget."""
        new: list[list[int]] = [[] for _ in rows]
        done = [m <= 0 for m in max_tokens]
        steps = decode_steps(models, torch.tensor(rows), Sampling(temperature=0, combine=self.combine),
                             device=self.device)
        while not all(done):
            for j, token in enumerate(next(steps).tolist()):
                if done[j]:
                    continue
                if token == self.eot:
                    done[j] = True
                    continue
                new[j].append(token)
                text = self.tokenizer.decode(new[j])
                done[j] = len(new[j]) >= max_tokens[j] or any(s and s in text for s in until[j])
        return [cut(self.tokenizer.decode(ids), stops) for ids, stops in zip(new, until)]


def cut(text: str, stops: list[str]) -> str:
    """`text` up to the first occurrence of any stop string."""
    ends = [text.find(s) for s in stops if s and s in text]
    return text[:min(ends)] if ends else text
