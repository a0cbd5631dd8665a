"""Tokenizers: a byte-level BPE trained on the training documents, or GPT-2's via tiktoken.

Byte-level BPE (GPT-2's scheme) never meets an unknown character and loses nothing: every token is a
run of bytes, so a token's byte length is known exactly, which is what bits-per-byte needs
(`token_bytes`). `<|endoftext|>` is the one special token; it ends every document in the store.
Text that happens to contain the string `<|endoftext|>` is encoded as ordinary bytes, so a
document can never forge a document boundary.

Encoding uses the Rust batch encoder, which splits a batch over threads; `set_threads` caps them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from scarce.atomic import write_text
from scarce.errors import UserError

EOT = "<|endoftext|>"
MIN_VOCAB = 257  # 256 byte tokens + EOT
NAMED = ("gpt2",)


def set_threads(n: int | None) -> None:
    """Cap the encoder's threads. Takes effect only before the first encode or train in this process
    (the Rust thread pool reads RAYON_RS_NUM_CPUS once)."""
    if n is not None:
        if n < 1:
            raise UserError(f"tokenizer threads must be >= 1, got {n}")
        os.environ["RAYON_RS_NUM_CPUS"] = str(n)


class Tokenizer:
    """A trained byte-level BPE (Hugging Face `tokenizers`)."""

    kind = "bpe"

    def __init__(self, hf) -> None:
        self._hf = hf
        # Text containing "<|endoftext|>" is encoded as plain bytes, not as the special token.
        self._hf.encode_special_tokens = True
        self._encode = getattr(hf, "encode_batch_fast", hf.encode_batch)  # _fast skips offsets

    @property
    def vocab_size(self) -> int:
        return self._hf.get_vocab_size(with_added_tokens=True)

    @property
    def eot_id(self) -> int:
        return self._hf.token_to_id(EOT)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._encode(texts, add_special_tokens=False)]

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def decode(self, ids: Iterable[int]) -> str:
        return self._hf.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_bytes(self) -> np.ndarray:
        """(vocab_size,) int32: UTF-8 bytes each token stands for; 0 for special tokens."""
        out = np.zeros(self.vocab_size, dtype=np.int32)
        special = {i for i, t in self._hf.get_added_tokens_decoder().items() if t.special}
        for token, i in self._hf.get_vocab(with_added_tokens=True).items():
            # ByteLevel writes each byte as one printable character, so characters == bytes.
            out[i] = 0 if i in special else len(token)
        return out

    def describe(self) -> dict:
        return {"kind": self.kind, "vocab_size": self.vocab_size, "eot_id": self.eot_id}

    def to_json(self) -> str:
        return self._hf.to_str()

    def save(self, path: str | os.PathLike) -> None:
        write_text(path, self.to_json())


class TiktokenTokenizer(Tokenizer):
    """A named tiktoken encoding (GPT-2's), for comparing with published models. Saved as a reference."""

    def __init__(self, name: str) -> None:
        self.kind = name
        self._tt = _tiktoken_encoding(name)

    @property
    def vocab_size(self) -> int:
        return self._tt.n_vocab

    @property
    def eot_id(self) -> int:
        return self._tt.eot_token

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        threads = int(os.environ.get("RAYON_RS_NUM_CPUS", os.cpu_count() or 1))
        return self._tt.encode_ordinary_batch(texts, num_threads=threads)

    def decode(self, ids: Iterable[int]) -> str:
        return self._tt.decode([int(i) for i in ids])

    def token_bytes(self) -> np.ndarray:
        special = {self._tt.encode_single_token(t) for t in self._tt.special_tokens_set}
        sizes = [0 if i in special else len(self._tt.decode_single_token_bytes(i)) for i in range(self.vocab_size)]
        return np.asarray(sizes, dtype=np.int32)

    def to_json(self) -> str:
        return json.dumps({"scarce_tiktoken": self.kind}) + "\n"


def _tiktoken_encoding(name: str):
    try:
        import tiktoken
    except ImportError:
        raise UserError(f"tokenizer {name!r} needs tiktoken: pip install 'scarce[hf]'") from None
    try:
        return tiktoken.get_encoding(name)
    except Exception as e:  # a download failure surfaces as several exception types
        raise UserError(
            f"could not load tiktoken's {name!r} files ({type(e).__name__}: {e}); they are downloaded once "
            "and cached (TIKTOKEN_CACHE_DIR), so run once with internet access or use --tokenizer bpe"
        ) from None


def train_bpe(docs: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE with `vocab_size` tokens (EOT included) on `docs`.

    The result is deterministic for the same documents in the same order. A small corpus may run out
    of pairs to merge; the tokenizer then has fewer tokens than asked (see `vocab_size`).
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_VOCAB:
        raise UserError(f"vocabulary size must be >= {MIN_VOCAB} (256 bytes + <|endoftext|>), got {vocab_size}")
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
        show_progress=False,
    )
    docs = docs if isinstance(docs, list) else list(docs)
    hf.train_from_iterator(docs, trainer, length=len(docs))
    return Tokenizer(hf)


def named_tokenizer(name: str) -> Tokenizer:
    """An existing tokenizer by name (only 'gpt2', via tiktoken)."""
    if name not in NAMED:
        raise UserError(f"unknown tokenizer {name!r}; choose 'bpe' (train one) or one of {', '.join(NAMED)}")
    return TiktokenTokenizer(name)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Read a `tokenizer.json` written by `Tokenizer.save`."""
    from tokenizers import Tokenizer as HFTokenizer

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        ref = json.loads(text).get("scarce_tiktoken")
        return TiktokenTokenizer(ref) if ref else Tokenizer(HFTokenizer.from_str(text))
    except UserError:
        raise
    except Exception as e:  # missing file, bad JSON, or a JSON that `tokenizers` rejects
        raise UserError(f"cannot read tokenizer {path}: {e}; prepare the store again") from None
