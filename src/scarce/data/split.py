"""Cutting a corpus held whole (`stdlib`, `files:`) into the train/select/val token arrays of a store.

How, and why:
1. Documents are deduplicated and ordered by the sha256 of their text. The order is a fixed
   pseudo-random shuffle that does not depend on the order the corpus came in, and identical texts
   (now one document) can never land in two splits.
2. Splits are filled in that order with whole documents: val, then select, then train, each to its
   exact token budget. The last document of a split is cut to hit the budget; its remainder is
   dropped, never moved to the next split, so no document straddles two splits.
3. The tokenizer must never see val or select text, but how many documents val and select take is
   only known after tokenizing. So a prefix of the order is held out from tokenizer training, sized
   generously in bytes (`HELDOUT_BYTES_PER_TOKEN` per val+select token). If val and select do not fit
   inside it, the prefix doubles and the tokenizer is trained again (rare, deterministic). Held-out
   documents that val and select do not use go to train, which is harmless. An existing tokenizer
   (`tokenizer` other than 'bpe', e.g. a Hugging Face model's for continued pretraining) is not trained,
   so nothing is held out for it.
4. Nothing in steps 1-3 depends on the train budget, so stores cut from one corpus with train budgets
   N, 2N, 4N... share the tokenizer, val and select, and their train splits are nested prefixes.
   `derive_store` cuts such a smaller store from a bigger one without tokenizing again.
4b. With `piece_bytes`, train takes pieces, not whole documents: the documents after select's (decided per
   document as above, so no document straddles train and val or select) are cut at line ends into pieces of about
   `piece_bytes` bytes, each ending with EOT, and the pieces are ordered by the hash of their text (salted by
   `seed`, as in step 9) before train fills to its budget. A small budget then samples many documents, not the few
   whole ones that happen to come first. The pieces and their order do not depend on the train budget, so the
   nesting of step 4 holds. The BPE still learns from whole train documents.
4c. With `doc_bytes`, every document is cut into pieces (at line ends, about `doc_bytes` bytes each, as in step 4b)
   before the split, and steps 2-3 fill the splits with pieces, so a corpus of a few long documents (books, plays)
   gives held-out windows per piece, not one per work. By default the split stays per source document: a document's
   pieces stay together (among them, in the order of their hashes salted by `seed`, so a split that takes part of a
   document takes it from all over the document), and a split starts past the last source document of the one
   before, so no document's text lands in two splits (the rest of that document is dropped). `piece_splits` asks for
   splits per piece instead: all pieces in the order of their hashes, each its own source, so val, select and train
   share documents but never a piece. Exact duplicate pieces are dropped. Pieces are cut in bytes, not tokens:
   the BPE learns from train text only, so it cannot exist before the split that needs the pieces. Step 3 holds out
   a prefix of pieces, so the BPE may learn from the dropped rest of a held-out document, never from a val or select
   piece.
9. `seed` draws another sample of the same corpus: with seed N > 0 the order of step 1 and the u of step 5
   (`scarce.data.stream`) come from sha256(N, the document's hash) instead of the hash itself, so val, select and the
   first train documents are another pseudo-random choice; 0 is the order above. At a small budget the sample moves the
   losses (and the multiples read off them) by more than their intervals over val windows: repeating a
   measurement over seeds shows by how much.

A local corpus is held whole in memory: it is scarce data (up to a few GB of text). A streamed one is cut as it
streams (`scarce.data.stream`, steps 5-8).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from scarce.data import corpora
from scarce.data.tokenizer import Tokenizer, parse_tokenizer_spec, train_bpe
from scarce.errors import UserError

FILL_ORDER = ("val", "select", "train")
HELDOUT_BYTES_PER_TOKEN = 6.0  # above what byte-level BPE reaches on code or prose, so one try suffices
HELDOUT_CAPS = (1 / 2, 5 / 8, 3 / 4)
"""The most of the corpus (by bytes) held out from tokenizer training, tried in turn: half first, so every store
that fits in half keeps its splits; more only where val and select need it (a sample whose documents are long
gives fewer tokens in held-out windows: `prepare --seed`)."""
ENCODE_BATCH_BYTES = 4_000_000  # big batches keep every encoder thread busy...
FIRST_BATCH_BYTES = 50_000  # ...but small budgets should not wait for megabytes they do not use
SPLITS_DRAWN_WHOLE = "whole corpus: sorted by document hash"
SPLITS_DRAWN_PIECES = SPLITS_DRAWN_WHOLE + "; train: its documents cut into pieces at line ends, sorted by piece hash"
DRAWN_DOC_PIECES = "; every document first cut into pieces at line ends, each document's pieces sorted by piece hash"
DRAWN_PIECE_SPLITS = ("; every document first cut into pieces at line ends, all pieces sorted by piece hash, "
                      "split by piece")


@dataclass(frozen=True)
class PrepareRequest:
    """What `prepare` was asked for; a store is reused only for an identical request and corpus."""

    source: str
    """Corpus source (see `scarce.data.corpora`)."""
    vocab_size: int
    """Tokens in the trained BPE, `<|endoftext|>` included (ignored for a named tokenizer)."""
    train_tokens: int
    select_tokens: int
    val_tokens: int
    """Exact token budgets of the splits."""
    tokenizer: str = "bpe"
    """'bpe' trains one on the train documents; 'gpt2' (or another tiktoken encoding's name) or a .tiktoken
    file one of tiktoken's encodings, converted to a tokenizer.json; 'hf:NAME_OR_PATH' a
    Hugging Face model's (a local folder or the local HF cache, never downloaded); a path ending in .json a
    `tokenizer.json` file (see `scarce.data.tokenizer.parse_tokenizer_spec`)."""
    tokenizer_bytes: int = 0
    """Train the BPE on at most this many bytes of train documents (0: all of them; for a streamed corpus,
    `STREAM_SAMPLE_BYTES`, which with a given value also sizes the held-out shares)."""
    near_duplicates: float = 0.0
    """Drop a document when at least this share of its distinct non-trivial lines already occurs in one
    document kept before it (near-copies such as generated codec tables would otherwise sit in train and
    in select or val); 0 keeps them. Needs the whole corpus, so a streamed one refuses it."""
    heldout_window: int = 0
    """Each select and val document contributes one window of at most this many tokens, at a place fixed by
    its hash, so the held-out splits span many documents and their losses agree; 0 takes whole documents."""
    seed: int = 0
    """Which sample of the corpus: 0 orders (and, streamed, splits) documents by the hash of their text, N > 0 by
    sha256 of N and that hash (module docstring, step 9)."""
    piece_bytes: int = 0
    """Cut train documents into pieces of about this many bytes (at line boundaries) and order the pieces
    pseudo-randomly (by the hash of the piece salted by `seed`) before the train budget is filled, so a small budget
    spans many source files; the split stays decided per source file (no file straddles train and select/val).
    0 keeps whole documents (module docstring, step 4b)."""
    doc_bytes: int = 0
    """Cut every document into pieces of about this many bytes (at line boundaries) before the split, so held-out
    windows come one per piece; the split stays decided per source document unless `piece_splits`. 0 keeps whole
    documents (module docstring, step 4c)."""
    piece_splits: bool = False
    """With `doc_bytes`, decide the split per piece instead of per source document: a document's pieces may land in
    val, select and train (never one piece in two)."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "train_tokens", "select_tokens", "val_tokens"):
            check_positive(name, getattr(self, name))
        if self.tokenizer_bytes != 0:
            check_positive("tokenizer_bytes", self.tokenizer_bytes)
        if not 0.0 <= self.near_duplicates <= 1.0:
            raise UserError(f"near_duplicates must be a share in [0, 1] (0 keeps them), got {self.near_duplicates}")
        if self.near_duplicates and corpora.is_streamed(self.source):
            raise UserError(f"--near-duplicates compares each document with the whole corpus, and {self.source} is "
                            "streamed, never held whole; leave it out, or give local files as files:PATH")
        if self.heldout_window != 0:
            check_positive("heldout_window", self.heldout_window)
        if self.piece_bytes != 0:
            check_positive("piece_bytes", self.piece_bytes)
        if self.piece_bytes and corpora.is_streamed(self.source):
            raise UserError(f"--piece-bytes orders the pieces of all train documents, and {self.source} is streamed, "
                            "never held whole; leave it out, or give local files as files:PATH")
        self._check_doc_bytes()
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed < 2**63:
            raise UserError(f"seed must be an integer in [0, 2^63) (0: the documents' hash order), got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))  # a numpy integer would not go into the manifest's JSON
        parse_tokenizer_spec(self.tokenizer)

    def _check_doc_bytes(self) -> None:
        if self.doc_bytes != 0:
            check_positive("doc_bytes", self.doc_bytes)
        if self.doc_bytes and corpora.is_streamed(self.source):
            raise UserError(f"--doc-bytes cuts every document before the corpus is split, and {self.source} is "
                            "streamed, split as it comes; leave it out, or give local files as files:PATH")
        if not isinstance(self.piece_splits, bool):
            raise UserError(f"piece_splits must be true or false, got {self.piece_splits!r}")
        if self.piece_splits and not self.doc_bytes:
            raise UserError("--piece-splits splits the pieces that --doc-bytes cuts; give --doc-bytes N as well")

    def budgets(self) -> dict[str, int]:
        return {"train": self.train_tokens, "select": self.select_tokens, "val": self.val_tokens}

    def to_json(self) -> dict:
        """The manifest's `request`: the fields added since (piece_bytes, doc_bytes, piece_splits) only where set, so
        stores made before them keep their manifests."""
        return {k: v for k, v in asdict(self).items() if v or k not in ("piece_bytes", "doc_bytes", "piece_splits")}

    def splits_drawn(self) -> str:
        """How a local corpus was cut, for the manifest."""
        doc = DRAWN_PIECE_SPLITS if self.piece_splits else DRAWN_DOC_PIECES if self.doc_bytes else ""
        train = SPLITS_DRAWN_PIECES.removeprefix(SPLITS_DRAWN_WHOLE) if self.piece_bytes else ""
        return SPLITS_DRAWN_WHOLE + doc + train


def check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise UserError(f"{name} must be a positive integer, got {value!r}")


def ordered_documents(source: str, near_duplicates: float = 0.0, seed: int = 0,
                      min_documents: int = len(FILL_ORDER)) -> tuple[list[str], dict]:
    """The corpus deduplicated and sorted by document hash (salted by `seed`), and a description of it."""
    return sorted_by_hash(corpora.read_corpus(source), source, near_duplicates, seed, min_documents)


def order_key(doc_hash: bytes, seed: int) -> bytes:
    """A document's place in the store's order (and, streamed, the source of its split): its hash for seed 0,
    else sha256 of the seed and the hash."""
    return doc_hash if seed == 0 else hashlib.sha256(int(seed).to_bytes(8, "big") + doc_hash).digest()


def sorted_by_hash(documents: Iterable[str], source: str, near_duplicates: float, seed: int = 0,
                   min_documents: int = len(FILL_ORDER)) -> tuple[list[str], dict]:
    """`min_documents`: splits per source document need one each; split per piece, one document suffices."""
    by_hash: dict[bytes, str] = {}
    seen = 0
    for doc in documents:
        by_hash.setdefault(corpora.document_hash(doc), doc)
        seen += 1
    order = sorted(by_hash, key=lambda h: order_key(h, seed))
    if near_duplicates:
        order = near_duplicate_free(order, by_hash, near_duplicates)
    docs = [by_hash[h] for h in order]
    if len(docs) < min_documents:
        pieces = " (or --doc-bytes N --piece-splits)" if min_documents > 1 else ""
        raise UserError(f"corpus {source!r} holds {len(docs)} distinct document(s); splits are by document, "
                        f"so it needs at least {min_documents}{pieces}")
    info = {
        "description": corpora.describe(source),
        "fingerprint": corpora.fingerprint(order),
        "documents": len(docs),
        "bytes": sum(len(d.encode("utf-8")) for d in docs),
        "duplicates_dropped": seen - len(docs),
    }
    return docs, info


NEAR_DUP_MIN_LINE = 16
"""Lines shorter than this (stripped) say little about where a document came from: `return x`, `else:`."""
NEAR_DUP_COMMON = 50
"""A line in more kept documents than this is boilerplate (a license line, `if __name__ == "__main__":`)."""


def near_duplicate_free(order: list[bytes], docs: dict[bytes, str], threshold: float) -> list[bytes]:
    """The hashes in `order` whose document does not repeat, for at least `threshold` of its distinct
    non-trivial lines, one document kept before it. Common lines are left out of the comparison."""
    postings: dict[str, list[int]] = {}
    kept: list[bytes] = []
    for h in order:
        lines = {ln for ln in (x.strip() for x in docs[h].splitlines()) if len(ln) >= NEAR_DUP_MIN_LINE}
        counts: dict[int, int] = {}
        for ln in lines:
            hits = postings.get(ln, ())
            if len(hits) <= NEAR_DUP_COMMON:
                for k in hits:
                    counts[k] = counts.get(k, 0) + 1
        if lines and counts and max(counts.values()) >= threshold * len(lines):
            continue
        for ln in lines:
            postings.setdefault(ln, []).append(len(kept))
        kept.append(h)
    return kept


# --------------------------------------------------------------------------------------------------
# Tokenizing and filling the splits


class _Encoded:
    """Token arrays of the documents (each ending in EOT), encoded lazily in batches that double up
    to ENCODE_BATCH_BYTES, so a small budget on a big corpus tokenizes little more than it needs."""

    def __init__(self, tok: Tokenizer, docs: list[str], window: int = 0, sources: list[int] | None = None) -> None:
        self.tok, self.docs, self.arrays, self.done_chars, self.window = tok, docs, [], 0, window
        self.dtype = np.dtype("<u2" if tok.vocab_size <= 2**16 else "<u4")
        self.sources = sources  # the source document of each (pieces of one document are consecutive); None: itself

    def next_source(self, i: int) -> int:
        """The first document at or after i that does not come from the source of document i - 1: where a split
        starts, so no source document gives to two splits (module docstring, step 4c)."""
        if self.sources is None or i == 0:
            return i
        while i < len(self.docs) and self.sources[i] == self.sources[i - 1]:
            i += 1
        return i

    def piece(self, i: int, split: str) -> np.ndarray:
        """What document i gives to `split`: all of it, or for select and val with a window, at most
        `window` tokens starting at an offset fixed by the document's hash, then EOT."""
        arr = self[i]
        if split == "train" or not self.window:
            return arr
        return window_of(arr, corpora.document_hash(self.docs[i]), self.window)

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, i: int) -> np.ndarray:
        while len(self.arrays) <= i:
            self._encode_next_batch()
        return self.arrays[i]

    def _encode_next_batch(self) -> None:
        start, end, size = len(self.arrays), len(self.arrays), 0
        limit = min(ENCODE_BATCH_BYTES, max(FIRST_BATCH_BYTES, self.done_chars))
        while end < len(self.docs) and size < limit:
            size += len(self.docs[end])
            end += 1
        self.done_chars += size
        eot = [self.tok.eot_id]
        for ids in self.tok.encode_batch(self.docs[start:end]):
            self.arrays.append(np.array(ids + eot, dtype=self.dtype))

    def tokens(self, start: int = 0, end: int | None = None) -> int:
        """Token count of documents [start, end), encoding them if needed."""
        end = len(self) if end is None else end
        return sum(len(self[i]) for i in range(start, end))


def window_of(arr: np.ndarray, doc_hash: bytes, window: int) -> np.ndarray:
    """At most `window` tokens of a document's tokens `arr` (EOT last), from an offset fixed by its hash, then EOT."""
    if len(arr) - 1 <= window:
        return arr
    start = int.from_bytes(doc_hash[:8], "little") % (len(arr) - window)
    return np.concatenate([arr[start:start + window], arr[-1:]])


def tokenize_splits(docs: list[str], req: PrepareRequest,
                    existing: Tokenizer | None = None) -> tuple[Tokenizer, dict[str, np.ndarray], dict]:
    """Cut the splits with `existing`, or with a BPE trained on train documents; returns (tokenizer, split
    arrays, held-out info)."""
    docs, sources = source_pieces(docs, req.doc_bytes, req.seed, req.piece_splits) if req.doc_bytes else (docs, None)
    if existing is not None:
        enc = _Encoded(existing, docs, req.heldout_window, sources)
        return enc.tok, _fill(enc, req), {"documents": 0, "bytes": 0}
    doc_bytes = np.array([len(d.encode("utf-8")) for d in docs], dtype=np.int64)
    heldout_tokens = req.val_tokens + req.select_tokens
    factor, caps = HELDOUT_BYTES_PER_TOKEN, list(HELDOUT_CAPS)
    while True:
        k, at_cap = _heldout_size(doc_bytes, heldout_tokens, factor, caps[0])
        enc = _Encoded(train_bpe(_tokenizer_documents(docs, doc_bytes, k, req.tokenizer_bytes), req.vocab_size), docs,
                       req.heldout_window, sources)
        if _fill_spans(enc, req.budgets(), FILL_ORDER[:2])["select"].stop <= k:
            return enc.tok, _fill(enc, req), {"documents": k, "bytes": int(doc_bytes[:k].sum())}
        if at_cap and len(caps) > 1:
            caps.pop(0)
            continue
        if at_cap:
            if req.heldout_window:
                have = sum(len(enc.piece(i, "select")) for i in range(k))
                unit, smaller = ("pieces", ", cut smaller pieces (--doc-bytes)") if req.doc_bytes else ("documents", "")
                raise UserError(
                    f"val + select ask for {heldout_tokens:,} tokens, more than the {have:,} that the {k:,} {unit} "
                    f"held out from tokenizer training (at most three quarters of the corpus) give in "
                    f"{req.heldout_window}-token windows; lower the select and val budgets, widen "
                    f"--heldout-window{smaller} or add text"
                )
            raise UserError(
                f"val + select ask for {heldout_tokens:,} tokens, more than the {enc.tokens(0, k):,} in the "
                f"documents held out from tokenizer training (at most three quarters of the corpus, which holds "
                f"{enc.tokens():,} tokens); lower the select and val budgets or add text"
            )
        factor *= 2


def _heldout_size(doc_bytes: np.ndarray, tokens: int, factor: float, share: float = 0.5) -> tuple[int, bool]:
    """How many leading documents to hide from tokenizer training, and whether that hit the cap
    (`share` of the corpus bytes, and at least one document left to train on)."""
    cum = np.cumsum(doc_bytes)
    # At least one document each for val and select, whatever their size.
    want = max(int(np.searchsorted(cum, tokens * factor)) + 1, len(FILL_ORDER) - 1)
    cap = min(max(1, int(np.searchsorted(cum, cum[-1] * share, side="right"))), len(doc_bytes) - 1)
    return min(want, cap), want >= cap


def _tokenizer_documents(docs: list[str], doc_bytes: np.ndarray, start: int, max_bytes: int) -> list[str]:
    """The train-side documents the BPE learns from: all after the held-out prefix, or a byte-capped run."""
    if not max_bytes:
        return docs[start:]
    end = start + int(np.searchsorted(np.cumsum(doc_bytes[start:]), max_bytes, side="right"))
    return docs[start:max(end, start + 1)]


def _fill_spans(enc: _Encoded, budgets: dict[str, int], names: tuple[str, ...]) -> dict[str, range]:
    """For each split in fill order, the documents it takes: from the first source past the split before it to
    the one that fills its budget."""
    spans, pos = {}, 0
    for name in names:
        need = budgets[name]
        start = pos = enc.next_source(pos)
        while need > 0:
            if pos == len(enc):
                raise _shortfall(enc, budgets, name, start)
            need -= len(enc.piece(pos, name))
            pos += 1
        spans[name] = range(start, pos)
    return spans


def _fill(enc: _Encoded, req: PrepareRequest) -> dict[str, np.ndarray]:
    """Cut val, select and train from the documents in order, each to its exact budget; with `piece_bytes`,
    train from the pieces of the documents after select's (module docstring, step 4b)."""
    names = FILL_ORDER[:2] if req.piece_bytes else FILL_ORDER
    spans = _fill_spans(enc, req.budgets(), names)
    arrays = {}
    for name in names:
        joined = np.concatenate([enc.piece(i, name) for i in spans[name]])
        arrays[name] = joined[:req.budgets()[name]]  # cuts the last document; its remainder is dropped
    if req.piece_bytes:
        arrays["train"] = _fill_pieces(enc.tok, enc.docs[enc.next_source(spans["select"].stop):], req)
    return arrays


def _fill_pieces(tok: Tokenizer, docs: list[str], req: PrepareRequest) -> np.ndarray:
    """The train split from `docs` cut into pieces in their hash order, to the exact budget (the last piece cut)."""
    pieces = _Encoded(tok, train_pieces(docs, req.piece_bytes, req.seed))
    parts, need = [], req.train_tokens
    for i in itertools.count():
        if need <= 0:
            return np.concatenate(parts)[:req.train_tokens]
        if i == len(pieces):
            raise UserError(
                f"the {len(docs):,} documents left for train after val and select hold {pieces.tokens():,} tokens "
                f"(in {len(pieces):,} pieces of ~{req.piece_bytes:,} bytes), too few for the train budget of "
                f"{req.train_tokens:,}; lower it to at most {pieces.tokens():,} tokens or add text")
        parts.append(pieces[i])
        need -= len(parts[-1])


def train_pieces(docs: list[str], piece_bytes: int, seed: int = 0) -> list[str]:
    """`docs` cut into pieces (`cut_pieces`), sorted by the hash of their text salted by `seed` (`order_key`): a
    pseudo-random order of its own, not the documents', so consecutive pieces come from different documents. A
    stable sort, so identical pieces keep the documents' order."""
    pieces = [p for doc in docs for p in cut_pieces(doc, piece_bytes)]
    return sorted(pieces, key=lambda p: order_key(corpora.document_hash(p), seed))


def source_pieces(docs: list[str], doc_bytes: int, seed: int = 0,
                  piece_splits: bool = False) -> tuple[list[str], list[int]]:
    """Every document of `docs` (in the store's order) cut into pieces (`cut_pieces`), and each piece's source:
    per source, a document's pieces stay together in their hash order (salted by `seed`); with `piece_splits`, all
    pieces in their hash order, each its own source. A piece identical to one before it is dropped, so no text lands
    in two splits (module docstring, step 4c)."""
    keyed = [(order_key(corpora.document_hash(p), seed), i, p) for i, doc in enumerate(docs)
             for p in cut_pieces(doc, doc_bytes)]
    keyed.sort(key=lambda t: t[0] if piece_splits else (t[1], t[0]))
    seen, pieces, sources = set(), [], []
    for key, source, piece in keyed:
        if key not in seen:
            seen.add(key)
            pieces.append(piece)
            sources.append(len(pieces) - 1 if piece_splits else source)
    return pieces, sources


def cut_pieces(doc: str, piece_bytes: int) -> list[str]:
    """`doc` cut at line ends into round(bytes / piece_bytes) pieces (at least one) of about equal UTF-8 bytes, so
    no piece is a short remainder; a line longer than a piece stays whole. The pieces join back into `doc`."""
    lines = doc.splitlines(keepends=True)
    sizes = [len(line.encode("utf-8")) for line in lines]
    total = sum(sizes)
    n = max(1, round(total / piece_bytes))
    pieces, start, done, k = [], 0, 0, 1
    for i, size in enumerate(sizes):
        done += size
        if k < n and done * n >= k * total:  # the k-th cut falls on or before this line's end
            pieces.append("".join(lines[start:i + 1]))
            start = i + 1
            while k < n and done * n >= k * total:
                k += 1
    if start < len(lines):
        pieces.append("".join(lines[start:]))
    return pieces


def _shortfall(enc: _Encoded, budgets: dict[str, int], name: str, start: int) -> UserError:
    """The error for a corpus too small for the budgets: how many tokens it holds, and what is left."""
    total = enc.tokens()
    left = sum(len(enc.piece(i, name)) for i in range(start, len(enc)))  # windows count, not whole documents
    unit = "document" if enc.sources is None else "piece"
    windows = f" ({enc.window}-token windows, one per {unit})" if enc.window and name != "train" else ""
    before = " and ".join(FILL_ORDER[:FILL_ORDER.index(name)])
    after = f" after {before}" if before else ""
    left_text = f"; {left:,} remain for {name}{after}{windows}" if before or windows else ""
    asked = ", ".join(f"{n} {budgets[n]:,}" for n in FILL_ORDER)
    pieces = "" if not windows else (", or cut long documents into pieces, a window each (--doc-bytes N)"
                                     if unit == "document" else ", or cut smaller pieces (--doc-bytes)")
    return UserError(
        f"the corpus holds {total:,} tokens in {len(enc):,} {unit}s{left_text}, too few for the budgets "
        f"({asked}; splits take whole {unit}s and drop the cut remainder); "
        f"lower the {name} budget to at most {left:,} tokens or add text{pieces}"
    )
