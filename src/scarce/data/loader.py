"""Training and evaluation batches from a flat token array.

Training cuts the train split into windows of seq_len + 1 tokens on a grid, shuffles the windows
afresh every epoch (seeded by run seed and epoch) and, with jitter, shifts the grid by a random
offset each epoch so repeated epochs see the text cut differently. With document shuffling (NanoGPT
Slowrun's record line 19) the documents themselves are first put in a new order each epoch, so a window
joins other documents each time; the reordered split is never built, each window is gathered through
the documents' new start positions. The batch of a step is a pure function of (seed, step), which makes
resuming trivial and keeps ranks disjoint under DDP: rank r takes its own slice of each step's windows.
"""

from __future__ import annotations

import numpy as np
import torch

from scarce.errors import UserError

DOC_STREAM = 31
"""Last word of the document order's seed: apart from the window order's draw of the same (seed, epoch)."""


class Documents:
    """The documents of a token array (each ends with the end-of-text token; the last may be cut short) and their
    order in one epoch."""

    def __init__(self, tokens: np.ndarray, doc_end: int):
        ends = np.flatnonzero(tokens == doc_end) + 1
        if not len(ends) or ends[-1] != len(tokens):
            ends = np.append(ends, len(tokens))
        self.starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)  # (D,)
        self.lengths = ends - self.starts  # (D,)

    def positions(self, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(the documents in this epoch's order, where each starts in the reordered split)."""
        order = np.random.default_rng([seed, epoch, DOC_STREAM]).permutation(len(self.starts))
        return order, np.concatenate([[0], np.cumsum(self.lengths[order])[:-1]])

    def gather(self, tokens: np.ndarray, where: np.ndarray, order: np.ndarray, new_starts: np.ndarray) -> np.ndarray:
        """The tokens at positions `where` of the reordered split."""
        doc = np.searchsorted(new_starts, where, side="right") - 1
        return tokens[self.starts[order[doc]] + where - new_starts[doc]]


class WindowLoader:
    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, grad_accum: int = 1,
                 seed: int = 0, rank: int = 0, world: int = 1, jitter: bool = True, doc_end: int | None = None):
        """`doc_end`: the end-of-text token id, to shuffle documents each epoch; None keeps the split's order."""
        self.tokens, self.T, self.B = tokens, seq_len, batch_size
        self.docs = None if doc_end is None else Documents(tokens, doc_end)
        self.accum, self.seed, self.rank, self.world, self.jitter = grad_accum, seed, rank, world, jitter
        # With jitter the grid may start anywhere in [0, T): keep windows that fit for every offset.
        usable = len(tokens) - 1 - (seq_len - 1 if jitter else 0)
        self.windows = max(usable, 0) // seq_len
        per_step = batch_size * grad_accum * world
        self.steps_per_epoch = self.windows // per_step
        if self.steps_per_epoch < 1:
            raise UserError(
                f"the train split ({len(tokens):,} tokens) holds {self.windows} windows of {seq_len + 1} tokens, "
                f"fewer than one step needs ({per_step}); lower train.batch_size or model.seq_len, or prepare more tokens"
            )
        self._epoch, self._offset, self._perm = -1, 0, np.empty(0, dtype=np.int64)

    def _order(self, epoch: int) -> tuple[int, np.ndarray]:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._offset = int(rng.integers(self.T)) if self.jitter else 0
            self._perm = rng.permutation(self.windows)
            if self.docs is not None:
                self._doc_order = self.docs.positions(self.seed, epoch)
            self._epoch = epoch
        return self._offset, self._perm

    def source(self, step: int, micro: int = 0) -> int:
        """The store a micro-batch comes from: always 0, the main one (`MixLoader` draws among several)."""
        return 0

    def batch(self, step: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (B, T) int64 of micro-batch `micro` of optimiser step `step` (this rank's part)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        offset, perm = self._order(epoch)
        start = ((within * self.accum + micro) * self.world + self.rank) * self.B
        starts = offset + perm[start:start + self.B] * self.T  # (B,)
        where = starts[:, None] + np.arange(self.T + 1)  # (B, T+1)
        rows = self.tokens[where] if self.docs is None else self.docs.gather(self.tokens, where, *self._doc_order)
        rows = rows.astype(np.int64)
        rows = torch.from_numpy(rows)
        return rows[:, :-1], rows[:, 1:]


class MixLoader:
    """Draws each micro-batch from other store i with probability fracs[i], else from `main` (config section
    `mix`); the choice is a pure function of (seed, step, micro), so resume stays exact and every rank draws
    from the same store. Epochs and the horizon are counted on the main loader."""

    def __init__(self, main: WindowLoader, others: list[WindowLoader], fracs: list[float], seed: int):
        self.main, self.others, self.seed = main, others, seed
        self.other = others[0]
        self.bounds = np.cumsum(fracs)  # u < bounds[i] (and not an earlier one): store i
        self.T, self.B, self.accum, self.world = main.T, main.B, main.accum, main.world
        self.steps_per_epoch = main.steps_per_epoch

    def source(self, step: int, micro: int = 0) -> int:
        """0 for the main store, i + 1 for other store i."""
        u = np.random.default_rng([self.seed, step, micro, 17]).random()
        return 1 + int(np.searchsorted(self.bounds, u, side="right")) if u < self.bounds[-1] else 0

    def batch(self, step: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.source(step, micro)
        return (self.others[k - 1] if k else self.main).batch(step, micro)


def eval_batches(tokens: np.ndarray, seq_len: int, batch_size: int, max_tokens: int = 0):
    """Consecutive non-overlapping windows over a split: yields (inputs, targets) of shape (b, T)."""
    n = (len(tokens) - 1) // seq_len
    if max_tokens:
        n = min(n, max(1, max_tokens // seq_len))
    if n < 1:
        raise UserError(f"the split holds {len(tokens)} tokens, fewer than one window of {seq_len + 1}")
    for i in range(0, n, batch_size):
        starts = np.arange(i, min(i + batch_size, n)) * seq_len
        rows = torch.from_numpy(tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64))
        yield rows[:, :-1], rows[:, 1:]
