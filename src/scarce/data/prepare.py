"""`prepare`: tokenize a corpus into a token store; `derive_store` and `replace_train`: stores cut from another.

How a corpus is split, and why: a corpus held whole (`stdlib`, `files:`) in `scarce.data.split` (steps 1-4c and 9), a
streamed one (`hf:`) in `scarce.data.stream` (steps 5-8). The manifest's `splits_drawn` says which method cut the store.
Everything is written into a temporary folder beside `out` and renamed into place at the end, so a
failed or killed `prepare` leaves no half-written store.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from scarce import __version__, atomic
from scarce.data import corpora
from scarce.data.split import FILL_ORDER, PrepareRequest, check_positive, ordered_documents, tokenize_splits
from scarce.data.store import FORMAT_VERSION, MANIFEST, SPLITS, TOKENIZER, TokenStore, open_store
from scarce.data.stream import SPLITS_DRAWN_STREAM, stream_splits
from scarce.data.tokenizer import Tokenizer, existing_tokenizer, set_threads
from scarce.errors import UserError
from scarce.progress import StatusLine

Log = Callable[[str], None]


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
    """Tokenize `corpus` into a token store at `out` (how, and why: `scarce.data.split` and `scarce.data.stream`).

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
            tok, arrays, corpus_info, tok_info = stream_splits(request, tok, status)
        finally:
            status.close()  # also on an error, so the error line starts a line of its own
    else:
        docs, corpus_info = ordered_documents(corpus, near_duplicates, seed, 1 if piece_splits else len(FILL_ORDER))
        if existing is not None:
            return _reuse(out, existing, request, tok, existing["corpus"]["fingerprint"] == corpus_info["fingerprint"],
                          log)
        tok, arrays, heldout = tokenize_splits(docs, request, tok)
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


def derive_store(base: TokenStore | str | os.PathLike, out: str | os.PathLike, train_tokens: int,
                 log: Log = print) -> TokenStore:
    """A store with the first `train_tokens` of `base`'s train split and the same tokenizer, select
    and val: what `prepare` would make with that train budget, without tokenizing again."""
    base = base if isinstance(base, TokenStore) else open_store(base)
    check_positive("train_tokens", train_tokens)
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

