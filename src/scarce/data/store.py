"""The token store: a folder holding a corpus cut into train/select/val token arrays, and reading it.

Layout: `manifest.json` (what was asked, what came out, sha256s), `tokenizer.json`, and `train.bin`,
`select.bin`, `val.bin`: flat little-endian token arrays (uint16 when the vocabulary fits, else uint32),
every document followed by the end-of-text token (`<|endoftext|>`, or an existing tokenizer's `eos_token`).
`scarce.data.prepare` writes stores; `scarce.data.split` and `scarce.data.stream` say how a corpus is cut.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from scarce import cache
from scarce.atomic import sha256_file
from scarce.data.tokenizer import Tokenizer, load_tokenizer
from scarce.errors import UserError

FORMAT_VERSION = 1
SPLITS = ("train", "select", "val")
VERIFIED_CACHE = "verified_stores.json"
MANIFEST, TOKENIZER = "manifest.json", "tokenizer.json"


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
