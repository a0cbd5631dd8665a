"""The token store: a folder holding a corpus cut into train/select/val token arrays.

Layout: `manifest.json` (what was asked, what came out, sha256s), `tokenizer.json`, and `train.bin`,
`select.bin`, `val.bin`: flat little-endian token arrays (uint16 when the vocabulary fits, else uint32),
every document followed by the end-of-text token (`<|endoftext|>`, or an existing tokenizer's `eos_token`).

How `prepare` splits a local corpus (`stdlib`, `files:`), and why:
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

A local corpus is held whole in memory: it is scarce data (up to a few GB of text). A streamed corpus
(`hf:`, which may be web-scale, such as FineWeb) is never held whole; its splits are drawn as it streams:
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
9. `seed` draws another sample of the same corpus: with seed N > 0 the order of step 1 and the u of step 5
   come from sha256(N, the document's hash) instead of the hash itself, so val, select and the first train
   documents are another pseudo-random choice; 0 is the order above. At a small budget the sample moves the
   losses (and the multiples read off them) by more than their intervals over val windows: repeating a
   measurement over seeds shows by how much.
Near-duplicate filtering compares each document with the whole corpus, so it is refused for a stream.

The manifest's `splits_drawn` says which method cut the store; a streamed store's `corpus` also records
the documents and bytes read, and the shares.
Everything is written into a temporary folder beside `out` and renamed into place at the end, so a
failed or killed `prepare` leaves no half-written store.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from scarce import __version__, atomic, cache
from scarce.atomic import sha256_file
from scarce.data import corpora
from scarce.data.tokenizer import (
    Tokenizer,
    existing_tokenizer,
    load_tokenizer,
    parse_tokenizer_spec,
    set_threads,
    train_bpe,
)
from scarce.errors import UserError
from scarce.progress import StatusLine

FORMAT_VERSION = 1
SPLITS = ("train", "select", "val")
VERIFIED_CACHE = "verified_stores.json"
FILL_ORDER = ("val", "select", "train")
MANIFEST, TOKENIZER = "manifest.json", "tokenizer.json"
HELDOUT_BYTES_PER_TOKEN = 6.0  # above what byte-level BPE reaches on code or prose, so one try suffices
HELDOUT_CAPS = (1 / 2, 5 / 8, 3 / 4)
"""The most of the corpus (by bytes) held out from tokenizer training, tried in turn: half first, so every store
that fits in half keeps its splits; more only where val and select need it (a sample whose documents are long
gives fewer tokens in held-out windows: `prepare --seed`)."""
ENCODE_BATCH_BYTES = 4_000_000  # big batches keep every encoder thread busy...
FIRST_BATCH_BYTES = 50_000  # ...but small budgets should not wait for megabytes they do not use
STREAM_SAMPLE_BYTES = 32_000_000
"""A streamed corpus's sample without `tokenizer_bytes`: train text the BPE learns from and that sizes the held-out
shares. A fixed size, not the train budget's, so stores of one stream nest; more costs BPE time (~10 s per core)."""
MAX_HELDOUT_SHARE = 0.25  # of a stream, each for val and select, so train always draws at least half of it
SPLITS_DRAWN_WHOLE = "whole corpus: sorted by document hash"
SPLITS_DRAWN_STREAM = "stream: document hash thresholds, stream order"
SPLITS_DRAWN_SMALL_STREAM = SPLITS_DRAWN_WHOLE + " (the stream ended within its sample)"
SPLITS_DRAWN_PIECES = SPLITS_DRAWN_WHOLE + "; train: its documents cut into pieces at line ends, sorted by piece hash"
DRAWN_DOC_PIECES = "; every document first cut into pieces at line ends, each document's pieces sorted by piece hash"
DRAWN_PIECE_SPLITS = ("; every document first cut into pieces at line ends, all pieces sorted by piece hash, "
                      "split by piece")
Log = Callable[[str], None]


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
            _check_positive(name, getattr(self, name))
        if self.tokenizer_bytes != 0:
            _check_positive("tokenizer_bytes", self.tokenizer_bytes)
        if not 0.0 <= self.near_duplicates <= 1.0:
            raise UserError(f"near_duplicates must be a share in [0, 1] (0 keeps them), got {self.near_duplicates}")
        if self.near_duplicates and corpora.is_streamed(self.source):
            raise UserError(f"--near-duplicates compares each document with the whole corpus, and {self.source} is "
                            "streamed, never held whole; leave it out, or give local files as files:PATH")
        if self.heldout_window != 0:
            _check_positive("heldout_window", self.heldout_window)
        if self.piece_bytes != 0:
            _check_positive("piece_bytes", self.piece_bytes)
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
            _check_positive("doc_bytes", self.doc_bytes)
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


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise UserError(f"{name} must be a positive integer, got {value!r}")


# --------------------------------------------------------------------------------------------------
# Reading a store


class TokenStore:
    """A validated token store. `split(name)` maps a split's tokens read-only, without loading them."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.manifest = _read_manifest(self.path)
        self.dtype = np.dtype(self.manifest["dtype"]).newbyteorder("<")
        tok = self.manifest["tokenizer"]
        self.vocab_size: int = tok["vocab_size"]
        self.eot_id: int = tok["eot_id"]
        for name in SPLITS:
            self._check_bin(name)
        if not (self.path / TOKENIZER).is_file():
            raise UserError(f"token store {self.path} lacks {TOKENIZER}; prepare it again")
        self.fingerprint = store_fingerprint(self.manifest)
        self._maps: dict[str, np.memmap] = {}
        self._tokenizer: Tokenizer | None = None

    def _check_bin(self, name: str) -> None:
        path = self.path / f"{name}.bin"
        want = self.manifest["splits"][name]["tokens"] * self.dtype.itemsize
        if not path.is_file():
            raise UserError(f"token store {self.path} lacks {path.name}; prepare it again")
        if path.stat().st_size != want:
            raise UserError(
                f"{path} holds {path.stat().st_size:,} bytes but the manifest says {want:,}; "
                "the store is damaged, prepare it again"
            )

    def check(self) -> None:
        """What a run asks of its store before training: every file matches its sha256 in the manifest and
        every token id is below the vocabulary size (a damaged or hand-edited store fails here, not as wrong
        numbers or an index error inside the model). The outcome is cached per file by path, size, mtime and
        inode ($XDG_CACHE_HOME/scarce/verified_stores.json), so a 100M-token store is hashed once, not on
        every open; `verify()` always rehashes."""
        if getattr(self, "_checked", False):
            return
        known, entries = cache.read(VERIFIED_CACHE), {}
        for file, want in self._digests().items():
            path = self.path / file
            key, stamp = str(path.resolve()), _stamp(path, want, self.vocab_size)
            if known.get(key) == stamp:
                continue
            if sha256_file(path) != want:
                raise UserError(f"{path} does not match its sha256 in the manifest; the store is damaged, "
                                f"prepare it again")
            if file.endswith(".bin"):
                self._check_ids(file.removesuffix(".bin"))
            entries[key] = stamp
        if entries:
            cache.update(VERIFIED_CACHE, entries)
        self._checked = True

    def _check_ids(self, name: str) -> None:
        tokens = self.split(name)
        top = int(tokens.max()) if len(tokens) else -1
        if top >= self.vocab_size:
            raise UserError(f"token store {self.path}: {name}.bin holds token id {top}, beyond the vocabulary "
                            f"of {self.vocab_size} in its manifest; the store is damaged, prepare it again")

    def _digests(self) -> dict[str, str]:
        checks = {TOKENIZER: self.manifest["tokenizer"]["sha256"]}
        checks.update({f"{n}.bin": self.manifest["splits"][n]["sha256"] for n in SPLITS})
        return checks

    def split(self, name: str) -> np.memmap:
        """The tokens of split 'train', 'select' or 'val', memory-mapped read-only."""
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        if name not in self._maps:
            self._maps[name] = np.memmap(self.path / f"{name}.bin", dtype=self.dtype, mode="r")
        return self._maps[name]

    def split_tokens(self, name: str) -> int:
        """Tokens in a split, as its manifest records them."""
        self.split(name)  # validates the name
        return int(self.manifest["splits"][name]["tokens"])

    def split_bytes(self, name: str) -> int:
        """UTF-8 bytes of the text a split's tokens encode (the denominator of bits per byte)."""
        self.split(name)  # validates the name
        return int(self.manifest["splits"][name]["bytes"])

    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.path / TOKENIZER, self.eot_id)
        return self._tokenizer

    def token_bytes(self) -> np.ndarray:
        """(vocab_size,) int32: bytes of text per token, 0 for the end-of-text token."""
        return self.tokenizer().token_bytes()

    def verify(self) -> None:
        """Recompute the sha256 of every file against the manifest (slow for big stores)."""
        for file, want in self._digests().items():
            if sha256_file(self.path / file) != want:
                raise UserError(f"{self.path / file} does not match its sha256 in the manifest; prepare it again")

    def __repr__(self) -> str:
        tokens = {n: self.manifest["splits"][n]["tokens"] for n in SPLITS}
        return f"TokenStore({str(self.path)!r}, fingerprint={self.fingerprint}, tokens={tokens})"


def _stamp(path: Path, sha256: str, vocab_size: int) -> list:
    """What must not change for a file's cached verification to hold."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino, sha256, vocab_size]


def open_store(path: str | os.PathLike) -> TokenStore:
    """Open and validate the token store at `path` (UserError if it is missing or damaged)."""
    return TokenStore(path)


def store_fingerprint(manifest: dict) -> str:
    """A short stable id of the store's content: tokenizer and split hashes, not paths or dates."""
    parts = [manifest["tokenizer"]["sha256"]] + [manifest["splits"][n]["sha256"] for n in SPLITS]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _read_manifest(path: Path) -> dict:
    if not path.is_dir():
        raise UserError(f"no token store at {path}; create one with `scarce prepare --out {path}`")
    file = path / MANIFEST
    if not file.is_file():
        raise UserError(f"{path} is not a token store (no {MANIFEST}); create one with `scarce prepare --out {path}`")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
        _check_manifest(manifest)
    except KeyError as e:  # str(KeyError) is the bare key in quotes
        raise UserError(f"{file} is damaged or not a scarce manifest (no field {e.args[0]}); prepare the store "
                        "again") from None
    except (ValueError, TypeError) as e:
        raise UserError(f"{file} is damaged or not a scarce manifest ({e}); prepare the store again") from None
    return manifest


def _check_manifest(m: dict) -> None:
    if not isinstance(m, dict):
        raise ValueError(f"a JSON {type(m).__name__}, not an object")
    if m["format_version"] != FORMAT_VERSION:
        raise ValueError(f"format_version {m['format_version']}, this scarce reads {FORMAT_VERSION}")
    np.dtype(m["dtype"])
    _require(m["tokenizer"], ("vocab_size", "eot_id", "sha256"), "tokenizer")
    vocab, eot = m["tokenizer"]["vocab_size"], m["tokenizer"]["eot_id"]
    if not isinstance(vocab, int) or isinstance(vocab, bool) or vocab < 1:
        raise ValueError(f"tokenizer.vocab_size is {vocab!r}")
    if not isinstance(eot, int) or isinstance(eot, bool) or not 0 <= eot < vocab:
        raise ValueError(f"tokenizer.eot_id is {eot!r}, not a token id below vocab_size {vocab}")
    _require(m["splits"], SPLITS, "splits")
    for name in SPLITS:
        _require(m["splits"][name], ("tokens", "bytes", "documents", "sha256"), f"splits.{name}")
        tokens = m["splits"][name]["tokens"]
        if not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"splits.{name}.tokens is {tokens!r}")


def _require(d: dict, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"{where} is not an object")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")


# --------------------------------------------------------------------------------------------------
# Writing a store


def prepare(
    corpus: str,
    out: str | os.PathLike,
    vocab_size: int,
    train_tokens: int,
    select_tokens: int,
    val_tokens: int,
    tokenizer: str | None = None,
    tokenizer_bytes: int = 0,
    threads: int | None = None,
    log: Log = print,
    near_duplicates: float = 0.0,
    heldout_window: int = 0,
    progress: Log | None = None,
    seed: int = 0,
    piece_bytes: int = 0,
    doc_bytes: int = 0,
    piece_splits: bool = False,
) -> TokenStore:
    """Tokenize `corpus` into a token store at `out` (see the module docstring for the method).

    An existing complete store at `out` made from the same request and corpus is reused. While a streamed
    corpus is read, a status line (documents, MB, MB/s, tokens per split) goes to `progress` every 0.5 s, or
    when `progress` is None to stderr if it is a terminal.
    """
    request = PrepareRequest(corpus, vocab_size, train_tokens, select_tokens, val_tokens,
                             tokenizer or "bpe", tokenizer_bytes, near_duplicates, heldout_window, seed, piece_bytes,
                             doc_bytes, piece_splits)
    out = Path(out)
    _check_destination(out)
    existing = _existing_manifest(out)
    if existing is not None and {**asdict(PrepareRequest("", 1, 1, 1, 1)), **existing["request"],
                                 "source": existing["request"]["source"]} != asdict(request):
        raise _exists_error(out, "a different request")  # (requests of earlier versions lack the newer fields)
    set_threads(threads)
    # An existing tokenizer is loaded before the corpus is read, so a bad one fails fast.
    tok = None if request.tokenizer == "bpe" else existing_tokenizer(request.tokenizer)
    if corpora.is_streamed(corpus):
        if existing is not None:
            return _reuse(out, existing, request, tok, _stream_unchanged(out, corpus, existing), log)
        status = StatusLine(progress)
        try:
            tok, arrays, corpus_info, tok_info = _stream_splits(request, tok, status)
        finally:
            status.close()  # also on an error, so the error line starts a line of its own
    else:
        docs, corpus_info = _ordered_documents(corpus, near_duplicates, seed, 1 if piece_splits else len(FILL_ORDER))
        if existing is not None:
            return _reuse(out, existing, request, tok, existing["corpus"]["fingerprint"] == corpus_info["fingerprint"],
                          log)
        tok, arrays, heldout = _tokenize_splits(docs, request, tok)
        corpus_info["splits_drawn"] = request.splits_drawn()
        tok_info = {"heldout": heldout}
    if request.tokenizer == "bpe" and tok.vocab_size < request.vocab_size:
        log(f"warning: the BPE ran out of pairs to merge at {tok.vocab_size:,} tokens, fewer than the "
            f"{request.vocab_size:,} asked (the corpus is too small for that vocabulary); the store uses "
            f"{tok.vocab_size:,}")
    manifest = _manifest(request, corpus_info, tok, arrays, tok_info)
    _write_store(out, manifest, lambda d: _write_files(d, tok, arrays))
    return open_store(out)


def _reuse(out: Path, existing: dict, request: PrepareRequest, tok: Tokenizer | None, same_corpus: bool,
           log: Log) -> TokenStore:
    """The store already at `out` for the same request, unless its corpus or its named tokenizer changed since."""
    if not same_corpus:
        raise _exists_error(out, "the same request on a corpus that has changed since")
    if tok is not None and _sha256(tok) != existing["tokenizer"]["sha256"]:
        raise _exists_error(out, f"a store made with another version of the tokenizer {request.tokenizer}")
    log(f"reusing the token store at {out} (same corpus and request)")
    return open_store(out)


def derive_store(base: TokenStore | str | os.PathLike, out: str | os.PathLike, train_tokens: int,
                 log: Log = print) -> TokenStore:
    """A store with the first `train_tokens` of `base`'s train split and the same tokenizer, select
    and val: what `prepare` would make with that train budget, without tokenizing again."""
    base = base if isinstance(base, TokenStore) else open_store(base)
    _check_positive("train_tokens", train_tokens)
    held = base.split_tokens("train")
    if train_tokens > held:
        raise UserError(f"{base.path} has {held:,} train tokens, fewer than the {train_tokens:,} asked; "
                        "derive from a bigger store or prepare a new one")
    request = {**base.manifest["request"], "train_tokens": int(train_tokens)}
    out = Path(out)
    existing = _existing_manifest(out)
    if existing is not None:
        same_base = existing.get("derived_from", {}).get("fingerprint") == base.fingerprint
        if existing["request"] == request and same_base:
            log(f"reusing the token store at {out} (same base and train budget)")
            return open_store(out)
        raise _exists_error(out, "different content")
    train = np.asarray(base.split("train")[:train_tokens])
    return replace_train(base, out, train, request=request,
                         derived_from={"path": str(base.path), "fingerprint": base.fingerprint})


def replace_train(base: TokenStore, out: str | os.PathLike, train: np.ndarray, **manifest_fields) -> TokenStore:
    """A store at `out` with `base`'s tokenizer, select and val splits and `train` as its train split
    (nested budgets, text sampled from a model); `manifest_fields` say how the train split was made."""
    _check_destination(Path(out))
    check_free(out)
    train = np.asarray(train).astype(base.dtype, copy=False)
    manifest = json.loads(json.dumps(base.manifest))  # deep copy
    manifest.update(created_at=_now(), **manifest_fields)
    manifest["splits"]["train"] = _split_stats("train", train, base.token_bytes(), base.eot_id)

    def write(d: Path) -> None:
        for name in ("select", "val"):
            shutil.copyfile(base.path / f"{name}.bin", d / f"{name}.bin")
        shutil.copyfile(base.path / TOKENIZER, d / TOKENIZER)
        train.tofile(d / "train.bin")

    _write_store(Path(out), manifest, write)
    return open_store(out)


def check_free(out: str | os.PathLike) -> None:
    """A UserError unless a new store can be written at `out` (absent, or an empty folder)."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise _exists_error(out, "a file" if not out.is_dir() else "other files")


def _check_destination(out: Path) -> None:
    """A UserError now, before any tokenizing, when a file stands where a folder above `out` should be."""
    for p in out.parents:
        if p.exists():
            if not p.is_dir():
                raise UserError(f"cannot write the token store to {out}: {p} is a file, not a folder")
            return


def _existing_manifest(out: Path) -> dict | None:
    """The manifest of a store already at `out`; None if `out` is free (absent or an empty folder)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    try:
        return open_store(out).manifest
    except UserError:
        raise _exists_error(out, "something that is not a complete token store") from None


def _exists_error(out: Path, what: str) -> UserError:
    return UserError(f"{out} already holds {what}; choose another folder or remove {out}")


def _ordered_documents(source: str, near_duplicates: float = 0.0, seed: int = 0,
                       min_documents: int = len(FILL_ORDER)) -> tuple[list[str], dict]:
    """The corpus deduplicated and sorted by document hash (salted by `seed`), and a description of it."""
    return _sorted_by_hash(corpora.read_corpus(source), source, near_duplicates, seed, min_documents)


def order_key(doc_hash: bytes, seed: int) -> bytes:
    """A document's place in the store's order (and, streamed, the source of its split): its hash for seed 0,
    else sha256 of the seed and the hash."""
    return doc_hash if seed == 0 else hashlib.sha256(int(seed).to_bytes(8, "big") + doc_hash).digest()


def _sorted_by_hash(documents: Iterable[str], source: str, near_duplicates: float, seed: int = 0,
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
        return _window(arr, corpora.document_hash(self.docs[i]), self.window)

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


def _window(arr: np.ndarray, doc_hash: bytes, window: int) -> np.ndarray:
    """At most `window` tokens of a document's tokens `arr` (EOT last), from an offset fixed by its hash, then EOT."""
    if len(arr) - 1 <= window:
        return arr
    start = int.from_bytes(doc_hash[:8], "little") % (len(arr) - window)
    return np.concatenate([arr[start:start + window], arr[-1:]])


def _tokenize_splits(docs: list[str], req: PrepareRequest,
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


# --------------------------------------------------------------------------------------------------
# Streaming a corpus (module docstring, steps 5-8)


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
            piece = _window(arr, h, self.window) if self.window and split != "train" else arr
            self.parts[split].append(piece[:self.budgets[split] - self.tokens[split]])
            self.tokens[split] += len(self.parts[split][-1])
        self.encoded_chars += self.pending_chars
        self.pending, self.pending_chars = [], 0

    def arrays(self) -> dict[str, np.ndarray]:
        return {n: np.concatenate(self.parts[n]) for n in SPLITS}

    def status(self) -> str:
        return " | tokens " + ", ".join(f"{n} {self.tokens[n]:,}/{self.budgets[n]:,}" for n in SPLITS)


def _stream_splits(req: PrepareRequest, tok: Tokenizer | None,
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
    docs, info = _sorted_by_hash([doc for *_, doc in buffered], req.source, 0.0, req.seed)
    buffered.clear()
    info.update(duplicates_dropped=stream.documents - len(docs), documents_read=stream.documents,
                bytes_read=stream.bytes, splits_drawn=SPLITS_DRAWN_SMALL_STREAM)
    tok, arrays, heldout = _tokenize_splits(docs, req, tok)
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


def _stream_unchanged(out: Path, source: str, existing: dict) -> bool:
    """Whether the documents the store at `out` read from `source` are still the same (they are read again, and for
    a store drawn whole, the stream must still end there)."""
    read = existing["corpus"].get("documents_read")
    if read is None:  # an earlier scarce read the whole stream and did not count what it read
        raise _exists_error(out, f"a store an earlier scarce drew from all of {source} (sorted by document hash)")
    whole = existing.get("splits_drawn") != SPLITS_DRAWN_STREAM
    docs = itertools.islice(corpora.iter_documents(source), read + 1 if whole else read)
    hashes = [corpora.document_hash(d) for d in docs]
    return len(hashes) == read and corpora.fingerprint(set(hashes)) == existing["corpus"]["fingerprint"]



# --------------------------------------------------------------------------------------------------
# Files


def _split_stats(name: str, tokens: np.ndarray, token_bytes: np.ndarray, eot_id: int) -> dict:
    counts = np.bincount(tokens, minlength=len(token_bytes))
    ends_cut = len(tokens) > 0 and tokens[-1] != eot_id  # the last document was cut short
    return {
        "file": f"{name}.bin",
        "tokens": int(len(tokens)),
        "bytes": int(counts.astype(np.int64) @ token_bytes.astype(np.int64)),
        "documents": int(counts[eot_id]) + int(ends_cut),
        "sha256": hashlib.sha256(np.ascontiguousarray(tokens)).hexdigest(),
    }


def _manifest(req: PrepareRequest, corpus_info: dict, tok: Tokenizer, arrays: dict[str, np.ndarray],
              tok_info: dict) -> dict:
    """`tok_info` says what the BPE did not see (`heldout`, local corpora) or what it learned from (`sample`)."""
    token_bytes = tok.token_bytes()
    corpus_info = dict(corpus_info)
    return {
        "format_version": FORMAT_VERSION,
        "scarce_version": __version__,
        "created_at": _now(),
        "source": req.source,
        "request": req.to_json(),
        "splits_drawn": corpus_info.pop("splits_drawn"),
        "corpus": corpus_info,
        "tokenizer": {**tok.describe(), "sha256": _sha256(tok), **tok_info},
        "dtype": "uint16" if arrays["train"].dtype.itemsize == 2 else "uint32",
        "splits": {n: _split_stats(n, arrays[n], token_bytes, tok.eot_id) for n in SPLITS},
    }


def _sha256(tok: Tokenizer) -> str:
    """The tokenizer's id in the manifest: the sha256 of its `tokenizer.json` (`scarce.data.tokenizer.hf_tokenizer`
    gives the same for a store prepared with `hf:`)."""
    return hashlib.sha256(tok.to_json().encode()).hexdigest()


def _write_files(folder: Path, tok: Tokenizer, arrays: dict[str, np.ndarray]) -> None:
    (folder / TOKENIZER).write_text(tok.to_json(), encoding="utf-8")
    for name, arr in arrays.items():
        arr.tofile(folder / f"{name}.bin")


def _write_store(out: Path, manifest: dict, write_files: Callable[[Path], None]) -> None:
    """Build the store in a temporary folder beside `out`, then rename it into place (`atomic.write_dir`)."""
    def fill(tmp: Path) -> None:
        write_files(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    try:
        atomic.write_dir(out, fill)
    except OSError as e:
        raise UserError(f"could not write the token store to {out}: {e}") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

