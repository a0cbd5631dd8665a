"""Cutting a streamed corpus (`hf:`, which may be web-scale, such as FineWeb) into a store's splits as it streams.

A streamed corpus is never held whole; its splits are drawn as it streams (steps 1-4 and 9 are `scarce.data.split`'s):
5. Each distinct document (exact duplicates dropped through a set of the hashes seen) goes to the split
   its hash alone decides: the hash maps to u in [0, 1); u below the val share is val, below the val and
   select shares together select, else train. So a document lands in the same split whatever else the
   corpus holds, and identical texts never straddle two splits.
6. The BPE learns from the sample: the first `tokenizer_bytes` (default `STREAM_SAMPLE_BYTES`) of train
   documents in stream order, never from val or select text. The held-out shares are sized from the val
   and select budgets (`HELDOUT_BYTES_PER_TOKEN` bytes per token, capped at `MAX_HELDOUT_SHARE` each) so
   that val and select fill within the sample and cost no reading beyond it.
7. Each split takes its documents in stream order up to its exact budget (the last one cut, its
   remainder dropped), and reading stops once all three are full. Neither the shares nor the sample
   depend on the train budget, so train is the first N train tokens of the stream and stores with train
   budgets N, 2N... share tokenizer, val and select and nest, as in step 4.
8. A stream that ends within its sample is small and all in memory by then: it is split as a local
   corpus (steps 1-4), so a small `hf:` folder loses nothing to the shares' sampling noise.
Memory is bounded by the sample and the budgets (plus a hash per document read), not by the corpus.
Near-duplicate filtering compares each document with the whole corpus, so it is refused for a stream.
A streamed store's manifest `corpus` also records the documents and bytes read, and the shares.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

from scarce.data import corpora
from scarce.data.split import (
    ENCODE_BATCH_BYTES,
    FILL_ORDER,
    FIRST_BATCH_BYTES,
    HELDOUT_BYTES_PER_TOKEN,
    SPLITS_DRAWN_WHOLE,
    PrepareRequest,
    order_key,
    sorted_by_hash,
    tokenize_splits,
    window_of,
)
from scarce.data.store import SPLITS
from scarce.data.tokenizer import Tokenizer, train_bpe
from scarce.errors import UserError
from scarce.progress import StatusLine

STREAM_SAMPLE_BYTES = 32_000_000
"""A streamed corpus's sample without `tokenizer_bytes`: train text the BPE learns from and that sizes the held-out
shares. A fixed size, not the train budget's, so stores of one stream nest; more costs BPE time (~10 s per core)."""
MAX_HELDOUT_SHARE = 0.25  # of a stream, each for val and select, so train always draws at least half of it
SPLITS_DRAWN_STREAM = "stream: document hash thresholds, stream order"
SPLITS_DRAWN_SMALL_STREAM = SPLITS_DRAWN_WHOLE + " (the stream ended within its sample)"


def stream_shares(budgets: dict[str, int], sample_bytes: int) -> dict[str, float]:
    """The share of a stream's documents that val and select draw: enough that each fills within the sample
    (`HELDOUT_BYTES_PER_TOKEN` bytes per token is above what BPE reaches), so they add no reading of their own."""
    held = {n: min(MAX_HELDOUT_SHARE, HELDOUT_BYTES_PER_TOKEN * budgets[n] / sample_bytes) for n in ("val", "select")}
    return {**held, "train": 1.0 - held["val"] - held["select"]}


def split_of(doc_hash: bytes, shares: dict[str, float]) -> str:
    """The split of a streamed document: its hash as u in [0, 1) against the shares' fixed thresholds. Bytes 8-16,
    not 0-8, which place its held-out window, so the window's place does not depend on the split."""
    u = int.from_bytes(doc_hash[8:16], "big") / 2**64
    if u < shares["val"]:
        return "val"
    return "select" if u < shares["val"] + shares["select"] else "train"


class _Stream:
    """The distinct documents of a streamed corpus in stream order, as (split, hash, text); counts what it read."""

    def __init__(self, source: str, shares: dict[str, float], seed: int = 0) -> None:
        self.shares, self.seen, self.seed = shares, set(), seed
        self.documents = self.bytes = self.distinct_bytes = 0
        self.started = 0.0  # at the first document: MB/s leaves out the dataset library's start-up
        self._items = self._distinct(corpora.iter_documents(source))

    def __iter__(self) -> Iterator[tuple[str, bytes, str]]:
        return self._items

    def _distinct(self, docs: Iterable[str]) -> Iterator[tuple[str, bytes, str]]:
        for doc in docs:
            size, h = len(doc.encode("utf-8")), corpora.document_hash(doc)
            self.started = self.started or time.perf_counter()
            self.documents += 1
            self.bytes += size
            if h not in self.seen:  # an exact duplicate is dropped, wherever it comes
                self.seen.add(h)
                self.distinct_bytes += size
                yield split_of(order_key(h, self.seed), self.shares), h, doc

    def info(self, source: str, sample_bytes: int) -> dict:
        return {
            "description": corpora.describe(source),
            "fingerprint": corpora.fingerprint(self.seen),
            "documents": len(self.seen),
            "bytes": self.distinct_bytes,
            "duplicates_dropped": self.documents - len(self.seen),
            "documents_read": self.documents,
            "bytes_read": self.bytes,
            "sample_bytes": sample_bytes,
            "shares": self.shares,
        }

    def status(self) -> str:
        mb = self.bytes / 1e6
        return (f"prepare: {self.documents:,} documents, {mb:,.1f} MB read "
                f"({mb / max(time.perf_counter() - self.started, 1e-9):.1f} MB/s)")


class _StreamFill:
    """The splits filling from a stream: a document's tokens (for select and val with a held-out window, one
    window) go to its split until the split's budget is met; the last is cut and its remainder dropped.
    Documents are encoded in batches that double up to ENCODE_BATCH_BYTES; a document whose split is full by
    the time its batch is encoded is dropped, so the splits do not depend on where batches end."""

    def __init__(self, tok: Tokenizer, budgets: dict[str, int], window: int) -> None:
        self.tok, self.budgets, self.window = tok, budgets, window
        self.dtype = np.dtype("<u2" if tok.vocab_size <= 2**16 else "<u4")
        self.parts: dict[str, list[np.ndarray]] = {n: [] for n in SPLITS}
        self.tokens = dict.fromkeys(SPLITS, 0)
        self.pending: list[tuple[str, bytes, str]] = []
        self.pending_chars = self.encoded_chars = 0

    def full(self, split: str | None = None) -> bool:
        return all(self.tokens[n] >= self.budgets[n] for n in ([split] if split else SPLITS))

    def offer(self, split: str, doc_hash: bytes, doc: str) -> None:
        if self.full(split):
            return
        self.pending.append((split, doc_hash, doc))
        self.pending_chars += len(doc)
        if self.pending_chars >= min(ENCODE_BATCH_BYTES, max(FIRST_BATCH_BYTES, self.encoded_chars)):
            self.flush()

    def flush(self) -> None:
        eot = [self.tok.eot_id]
        for (split, h, _), ids in zip(self.pending, self.tok.encode_batch([d for *_, d in self.pending])):
            if self.full(split):
                continue
            arr = np.array(ids + eot, dtype=self.dtype)
            piece = window_of(arr, h, self.window) if self.window and split != "train" else arr
            self.parts[split].append(piece[:self.budgets[split] - self.tokens[split]])
            self.tokens[split] += len(self.parts[split][-1])
        self.encoded_chars += self.pending_chars
        self.pending, self.pending_chars = [], 0

    def arrays(self) -> dict[str, np.ndarray]:
        return {n: np.concatenate(self.parts[n]) for n in SPLITS}

    def status(self) -> str:
        return " | tokens " + ", ".join(f"{n} {self.tokens[n]:,}/{self.budgets[n]:,}" for n in SPLITS)


def stream_splits(req: PrepareRequest, tok: Tokenizer | None,
                  status: StatusLine) -> tuple[Tokenizer, dict[str, np.ndarray], dict, dict]:
    """Cut the splits from the streamed corpus `req.source` as it streams (module docstring, steps 5-8); returns
    (tokenizer, split arrays, corpus info, tokenizer info)."""
    sample_bytes = req.tokenizer_bytes or STREAM_SAMPLE_BYTES
    stream = _Stream(req.source, stream_shares(req.budgets(), sample_bytes), req.seed)
    buffered, sample, ended = _read_sample(stream, sample_bytes, status)
    if ended:
        return _small_stream(buffered, stream, req, tok)
    tok_info = {}
    if tok is None:
        size = sum(len(d.encode("utf-8")) for d in sample)
        status.update(lambda: f"{stream.status()} | training the BPE on {size / 1e6:,.1f} MB of train documents",
                      force=True)
        tok, tok_info = train_bpe(sample, req.vocab_size), {"sample": {"documents": len(sample), "bytes": size}}
    del sample  # the buffer still holds the texts, until each is encoded
    fill = _StreamFill(tok, req.budgets(), req.heldout_window)
    for item in itertools.chain(_drain(buffered), stream):
        fill.offer(*item)
        if fill.full():
            break
        status.update(lambda: stream.status() + fill.status())
    fill.flush()
    status.update(lambda: stream.status() + fill.status(), force=True)
    if not fill.full():
        raise _stream_shortfall(req, stream, fill)
    return tok, fill.arrays(), {**stream.info(req.source, sample_bytes), "splits_drawn": SPLITS_DRAWN_STREAM}, tok_info


def _read_sample(stream: _Stream, max_bytes: int, status: StatusLine) -> tuple[deque, list[str], bool]:
    """Read until the train documents hold `max_bytes` (whole documents while they fit, at least one): the sample.
    Everything read on the way stays buffered in order for encoding; the flag says the stream ended first."""
    buffered: deque = deque()
    sample, size = [], 0
    for item in stream:
        buffered.append(item)
        if item[0] == "train":
            n = len(item[2].encode("utf-8"))
            if sample and size + n > max_bytes:
                return buffered, sample, False
            sample.append(item[2])
            size += n
            if size >= max_bytes:
                return buffered, sample, False
        status.update(lambda size=size: f"{stream.status()} | tokenizer sample {size / 1e6:,.1f}/"
                                        f"{max_bytes / 1e6:,.1f} MB")
    return buffered, sample, True


def _drain(buffered: deque) -> Iterator:
    """The buffer's items in order, each let go once taken, so encoding the buffer frees its text."""
    while buffered:
        yield buffered.popleft()


def _small_stream(buffered: deque, stream: _Stream, req: PrepareRequest,
                  tok: Tokenizer | None) -> tuple[Tokenizer, dict[str, np.ndarray], dict, dict]:
    """A stream that ended within its sample, all in memory now: split as a local corpus (module docstring, step 8)."""
    if not stream.documents:
        raise UserError(f"corpus {req.source!r} holds no non-empty documents; give a corpus with some text")
    docs, info = sorted_by_hash([doc for *_, doc in buffered], req.source, 0.0, req.seed)
    buffered.clear()
    info.update(duplicates_dropped=stream.documents - len(docs), documents_read=stream.documents,
                bytes_read=stream.bytes, splits_drawn=SPLITS_DRAWN_SMALL_STREAM)
    tok, arrays, heldout = tokenize_splits(docs, req, tok)
    return tok, arrays, info, {"heldout": heldout}


def _stream_shortfall(req: PrepareRequest, stream: _Stream, fill: _StreamFill) -> UserError:
    """The error for a stream that ended before a split was full: what each split got."""
    name = next(n for n in FILL_ORDER if not fill.full(n))
    got = ", ".join(f"{n} {fill.tokens[n]:,} of {fill.budgets[n]:,}" for n in FILL_ORDER)
    hint = (f"lower the train budget to at most {fill.tokens['train']:,} tokens" if name == "train" else
            f"lower the {name} budget or --tokenizer-bytes (the {name} share, {stream.shares[name]:.1%}, is sized to "
            f"fill within the first {req.tokenizer_bytes or STREAM_SAMPLE_BYTES:,} bytes of train text)")
    return UserError(
        f"the corpus holds too few tokens for the budgets: its {stream.documents:,} documents "
        f"({stream.bytes / 1e6:,.1f} MB) gave {got} tokens (a streamed document goes to the split its hash picks; "
        f"splits take whole documents and drop the cut remainder); {hint}, or add text"
    )
