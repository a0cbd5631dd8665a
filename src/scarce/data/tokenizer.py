"""Tokenizers: a byte-level BPE trained on the training documents, or an existing one: a Hugging Face
model's or a `tokenizer.json` file (for continued pretraining), or one of tiktoken's encodings (GPT-2's,
`cl100k_base`, ...) by name or from its local `.tiktoken` file.

Byte-level BPE (GPT-2's scheme) never meets an unknown character and loses nothing: every token is a
run of bytes, so a token's byte length is known exactly, which is what bits-per-byte needs
(`token_bytes`). `<|endoftext|>` is the one special token; it ends every document in the store.
Text that happens to contain the string `<|endoftext|>` is encoded as ordinary bytes, so a
document can never forge a document boundary.

A tiktoken encoding is converted once into the same kind of tokenizer (byte-level BPE with the encoding's
split pattern and special-token ids; the ids equal tiktoken's), so a store always holds a self-contained
`tokenizer.json` and nothing is fetched again when it is read.

An existing tokenizer ends documents with its own end-of-text token (the model's `eos_token`) and must
decode byte-level (GPT-2, Llama 3, Qwen) or SentencePiece-style (Llama 2, Mistral, Gemma), the two schemes
whose tokens' byte lengths can be read off the token strings.

Encoding uses the Rust batch encoder, which splits a batch over threads; `set_threads` caps them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np

from scarce.atomic import write_text
from scarce.cache import cache_path
from scarce.errors import UserError

EOT = "<|endoftext|>"
MIN_VOCAB = 257  # 256 byte tokens + EOT
TIKTOKEN_NAMES = ("gpt2", "r50k_base", "p50k_base", "cl100k_base", "o200k_base")
"""tiktoken's public encodings by name; 'gpt2' is `r50k_base` (the same ranks, pattern and <|endoftext|>)."""
TIKTOKEN_ALIAS = {"gpt2": "r50k_base"}
NAMED = TIKTOKEN_NAMES
SPEC_FORMS = ("'bpe' (train one on the train documents), 'gpt2' or another tiktoken encoding (r50k_base, p50k_base, "
              "cl100k_base, o200k_base), a tiktoken file (NAME.tiktoken), 'hf:NAME_OR_PATH' (a Hugging Face "
              "model's: a local model folder or a model in the local HF cache) or a tokenizer.json file")
MODEL_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")  # SentencePiece's byte fallback: one piece per raw byte


def set_threads(n: int | None) -> None:
    """Cap the encoder's threads. Takes effect only before the first encode or train in this process
    (the Rust thread pool reads RAYON_RS_NUM_CPUS once)."""
    if n is not None:
        if n < 1:
            raise UserError(f"tokenizer threads must be >= 1, got {n}")
        os.environ["RAYON_RS_NUM_CPUS"] = str(n)


class Tokenizer:
    """A Hugging Face `tokenizers` tokenizer: a byte-level BPE trained here, or an existing one."""

    source: str | None = None
    """Where an existing tokenizer came from (a hub name or an absolute path); None for one trained here."""

    def __init__(self, hf, eot: str = EOT, kind: str = "bpe", source: str | None = None) -> None:
        self._hf, self.eot, self.kind, self.source = hf, eot, kind, source
        # Text containing "<|endoftext|>" (or any special token) is encoded as plain text, not as the token.
        self._hf.encode_special_tokens = True
        # Some tokenizer.json files carry truncation or padding; a document is always encoded whole.
        self._hf.no_truncation()
        self._hf.no_padding()
        self._encode = getattr(hf, "encode_batch_fast", hf.encode_batch)  # _fast skips offsets
        top = max(hf.get_vocab(with_added_tokens=True).values(), default=-1)
        self._vocab_size = max(hf.get_vocab_size(with_added_tokens=True), top + 1)  # ids may leave holes

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def eot_id(self) -> int:
        return self._hf.token_to_id(self.eot)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._encode(texts, add_special_tokens=False)]

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def decode(self, ids: Iterable[int]) -> str:
        return self._hf.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_bytes(self) -> np.ndarray:
        """(vocab_size,) int32: UTF-8 bytes each token stands for; 0 for special tokens and the end-of-text.
        A SentencePiece tokenizer's space marker counts one byte, so the space it prepends to a text (which
        its decoder strips) adds one byte per document."""
        count = _byte_counter(self._hf, self.source or self.kind)
        out = np.zeros(self.vocab_size, dtype=np.int32)
        special = {i for i, t in self._hf.get_added_tokens_decoder().items() if t.special}
        for token, i in self._hf.get_vocab(with_added_tokens=True).items():
            out[i] = 0 if i in special else count(token)
        out[self.eot_id] = 0
        return out

    def describe(self) -> dict:
        existing = {"source": self.source, "eot_token": self.eot} if self.source else {}
        return {"kind": self.kind, **existing, "vocab_size": self.vocab_size, "eot_id": self.eot_id}

    def to_json(self) -> str:
        return self._hf.to_str()

    def save(self, path: str | os.PathLike) -> None:
        write_text(path, self.to_json())


def _byte_counter(hf, name: str) -> Callable[[str], int]:
    """How many bytes of text a token string stands for, read off the way the tokenizer decodes."""
    from tokenizers import pre_tokenizers

    steps = _decoder_steps(json.loads(hf.decoder.__getstate__()) if hf.decoder else {})
    kinds = {s.get("type") for s in steps} - {None}
    if "ByteLevel" in kinds:
        alphabet = frozenset(pre_tokenizers.ByteLevel.alphabet())
        # ByteLevel writes each byte as one character of its alphabet; its decoder passes a token holding
        # any other character (an added token written as plain text) through as that text's UTF-8.
        return lambda t: len(t) if alphabet.issuperset(t) else len(t.encode("utf-8"))
    spaces = [s.get("replacement") for s in steps if s.get("type") == "Metaspace"]
    spaces += [s["pattern"].get("String") for s in steps if s.get("type") == "Replace" and s.get("content") == " "]
    spaces = [x for x in spaces if x]
    if spaces:
        return partial(_piece_bytes, space=spaces[0], byte_fallback="ByteFallback" in kinds)
    raise UserError(
        f"tokenizer {name} decodes with {', '.join(sorted(kinds)) or 'no decoder'}, neither byte-level nor "
        "SentencePiece-style, so the bytes each token stands for (bits per byte) are unknown; use a byte-level "
        "BPE (GPT-2, Llama 3, Qwen) or a SentencePiece tokenizer (Llama 2, Mistral, Gemma)"
    )


def _decoder_steps(decoder: dict) -> list[dict]:
    if decoder.get("type") == "Sequence":
        return [s for d in decoder.get("decoders", []) for s in _decoder_steps(d)]
    return [decoder]


def _piece_bytes(token: str, space: str, byte_fallback: bool) -> int:
    """SentencePiece: the space marker (U+2581) is one space byte, a byte-fallback piece <0xNN> one byte."""
    if byte_fallback and BYTE_PIECE.fullmatch(token):
        return 1
    return len(token.replace(space, " ").encode("utf-8"))


class TiktokenTokenizer(Tokenizer):
    """A store of an earlier version that saved only the name of a tiktoken encoding ({"scarce_tiktoken": NAME}),
    read through tiktoken (its cache, else the network). New stores hold the converted `tokenizer.json`."""

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
        raise UserError(f"could not load tiktoken's {name!r} files ({type(e).__name__}: {_one_line(e)[:160]}); "
                        f"{_where_to_put(TIKTOKEN_ALIAS.get(name, name))}") from None


# --------------------------------------------------------------------------------------------------
# tiktoken encodings, converted


def tiktoken_dir() -> Path:
    """Where `--tokenizer NAME` looks for NAME.tiktoken before asking tiktoken (whose cache, or the network,
    is the fallback): $XDG_CACHE_HOME/scarce/tokenizers (~/.cache/scarce/tokenizers)."""
    return cache_path("tokenizers")


def _where_to_put(name: str) -> str:
    d = _tiktoken_definitions().get(name, {})
    url = f" (from {d['url']})" if d.get("url") else ""
    return (f"offline, put {name}.tiktoken{url} in {tiktoken_dir()}/, or give the file itself as --tokenizer "
            f"PATH/{name}.tiktoken (or the model's folder as hf:FOLDER)")


def _tiktoken_definitions() -> dict[str, dict]:
    """tiktoken's own definition of each public encoding, read without its ranks: name -> {url, sha256,
    pat_str, special_tokens, n_vocab}. Its constructors are run with the rank loader replaced by one that
    records which file (and sha256) they would load."""
    global _DEFINITIONS
    if _DEFINITIONS is None:
        try:
            from tiktoken_ext import openai_public
        except ImportError:
            raise UserError("tiktoken encodings need tiktoken: pip install 'scarce[hf]'") from None
        out = {}
        for name in TIKTOKEN_NAMES:
            if name in TIKTOKEN_ALIAS:
                continue
            seen = {}

            def record(url, expected_hash=None, _seen=seen):
                _seen.update(url=url, sha256=expected_hash)
                return {}

            try:
                with mock.patch.object(openai_public, "load_tiktoken_bpe", record):
                    spec = openai_public.ENCODING_CONSTRUCTORS[name]()
            except Exception:  # a tiktoken whose layout differs: that encoding is not offered
                continue
            if seen.get("sha256"):
                out[name] = {**seen, "pat_str": spec["pat_str"], "special_tokens": dict(spec["special_tokens"]),
                             "n_vocab": spec.get("explicit_n_vocab")}
        _DEFINITIONS = out
    return _DEFINITIONS


_DEFINITIONS: dict[str, dict] | None = None


def tiktoken_named(name: str) -> Tokenizer:
    """tiktoken's encoding `name` ('gpt2' is r50k_base), converted: its ranks from NAME.tiktoken in
    `tiktoken_dir()` when there, else through tiktoken (its cache or the network)."""
    base = TIKTOKEN_ALIAS.get(name, name)
    definition = _tiktoken_definitions().get(base)
    if definition is None:
        raise UserError(f"this tiktoken has no encoding {base!r} (pip install -U tiktoken)")
    local = tiktoken_dir() / f"{base}.tiktoken"
    if local.is_file():
        if _file_sha256(local) != definition["sha256"]:
            raise UserError(f"{local} is not tiktoken's {base} (its sha256 differs); replace it, or delete it "
                            "to let tiktoken fetch the encoding")
        ranks = _read_ranks(local)
    else:
        try:
            from tiktoken.load import load_tiktoken_bpe

            ranks = load_tiktoken_bpe(definition["url"], expected_hash=definition["sha256"])
        except Exception as e:  # a download failure surfaces as several exception types
            raise UserError(f"could not load tiktoken's {base} ({type(e).__name__}: {_one_line(e)[:120]}); "
                            f"{_where_to_put(base)}") from None
    kind = "gpt2" if name == "gpt2" else "tiktoken"
    return _converted(ranks, definition, kind, base)


def tiktoken_file(path: str) -> Tokenizer:
    """A local tiktoken BPE file, recognised by its sha256 as one of tiktoken's public encodings (whose split
    pattern and special-token ids the file itself does not record)."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise UserError(f"no tokenizer file at {file}")
    digest = _file_sha256(file)
    known = {d["sha256"]: n for n, d in _tiktoken_definitions().items()}
    if digest not in known:
        raise UserError(f"tokenizer {file}: a .tiktoken file records neither its split pattern nor its special "
                        f"tokens' ids, and this one is not one of tiktoken's encodings ({', '.join(known)}) whose "
                        "definitions scarce knows; give the model's folder as hf:FOLDER or its tokenizer.json")
    name = known[digest]
    return _converted(_read_ranks(file), _tiktoken_definitions()[name], "tiktoken", str(file))


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_ranks(path: Path) -> dict[bytes, int]:
    """The mergeable ranks of a .tiktoken file (one `base64-token rank` per line)."""
    ranks = {}
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise UserError(f"cannot read tokenizer {path}: line {n} is not 'BASE64-TOKEN RANK'") from None
    return ranks


def _converted(ranks: dict[bytes, int], definition: dict, kind: str, source: str) -> Tokenizer:
    """A tiktoken encoding as a byte-level BPE `tokenizers` model giving the same ids: transformers'
    converter recovers the merges from the ranks; the split pattern and the special tokens (at tiktoken's
    ids) come from tiktoken's definition."""
    try:
        from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
        from tokenizers import Tokenizer as HFTokenizer
        from transformers.convert_slow_tokenizer import TikTokenConverter
    except ImportError:
        raise UserError(f"tokenizer {source} needs transformers: pip install 'scarce[hf]'") from None

    class FromRanks(TikTokenConverter):
        def load_tiktoken_bpe(self, _url):
            return ranks

    vocab, merges = FromRanks().extract_vocab_merges_from_model(None)
    specials = definition["special_tokens"]
    hf = HFTokenizer(models.BPE({**vocab, **specials}, merges, fuse_unk=False, ignore_merges=True))
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(definition["pat_str"]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return _existing(hf, kind, source, EOT, source)


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


# --------------------------------------------------------------------------------------------------
# Existing tokenizers


def parse_tokenizer_spec(spec: str) -> tuple[str, str]:
    """(kind, argument) of a tokenizer SPEC: ('bpe', ''), ('tiktoken', NAME), ('hf', NAME_OR_PATH),
    ('json', PATH) or ('tiktoken-file', PATH); a one-line UserError listing the accepted forms for anything
    else."""
    if spec == "bpe":
        return "bpe", ""
    if spec in NAMED:
        return "tiktoken", spec
    if spec.startswith("hf:") and spec[3:].strip():
        return "hf", spec[3:]
    if spec.endswith(".json"):
        return "json", spec
    if spec.endswith(".tiktoken"):
        return "tiktoken-file", spec
    raise UserError(f"unknown tokenizer {spec!r}; give {SPEC_FORMS}")


def existing_tokenizer(spec: str) -> Tokenizer:
    """The tokenizer a SPEC other than 'bpe' names (see `parse_tokenizer_spec`), loaded without training."""
    kind, arg = parse_tokenizer_spec(spec)
    assert kind != "bpe", "a BPE is trained, not loaded"
    loaders = {"hf": hf_tokenizer, "json": tokenizer_file, "tiktoken": tiktoken_named, "tiktoken-file": tiktoken_file}
    return loaders[kind](arg)


def hf_tokenizer(source: str) -> Tokenizer:
    """The tokenizer of a Hugging Face model: `source` is a local model folder, or a hub name already in
    the local HF cache (nothing is ever downloaded). Its fast backend is used as is and documents end with
    its `eos_token` (else `<|endoftext|>`). `sha256(hf_tokenizer(s).to_json().encode())` is the tokenizer
    sha256 in the manifest of a store prepared with `--tokenizer hf:s`."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UserError(f"tokenizer hf:{source} needs transformers: pip install 'scarce[hf]'") from None
    where = _model_location(source)
    try:
        tok = AutoTokenizer.from_pretrained(where, local_files_only=True)
    except Exception as e:  # transformers raises OSError, ValueError or a JSON error, by what is missing
        if where == source and isinstance(e, OSError):
            raise UserError(
                f"hf:{source} is neither a local model folder nor a model in the local Hugging Face cache; "
                f"nothing was downloaded (fetch it once with `hf download {source}`, or give its folder)"
            ) from None
        raise UserError(f"cannot load a tokenizer from {where} ({type(e).__name__}: {_one_line(e)}); "
                        "nothing was downloaded") from None
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise UserError(f"the tokenizer of {where} ({type(tok).__name__}) has no fast version (a Rust "
                        "`tokenizers` backend), which scarce needs")
    return _existing(backend, "hf", where, tok.eos_token, f"hf:{source}")


def _model_location(source: str) -> str:
    """The absolute path of a local model folder, or `source` itself when it can be a hub name."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not any((path / f).is_file() for f in MODEL_TOKENIZER_FILES):
            raise UserError(f"{path} holds no tokenizer (no {', '.join(MODEL_TOKENIZER_FILES)}); "
                            "nothing was downloaded")
        return str(path.resolve())
    if path.exists():
        raise UserError(f"hf:{source} is a file, not a model folder; give a tokenizer.json file without hf:")
    if not HUB_ID.fullmatch(source):
        raise UserError(f"no model folder at {path} (hf:{source}); nothing was downloaded")
    return source


def tokenizer_file(path: str) -> Tokenizer:
    """A Hugging Face `tokenizer.json` file; documents end with its `<|endoftext|>`."""
    from tokenizers import Tokenizer as HFTokenizer

    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise UserError(f"no tokenizer file at {file}")
    try:
        hf = HFTokenizer.from_file(str(file))
    except Exception as e:  # bad JSON, or a JSON that `tokenizers` rejects
        raise UserError(f"cannot read tokenizer {file}: {_one_line(e)}") from None
    return _existing(hf, "json", str(file), None, str(file))


def _existing(hf, kind: str, source: str, eos: str | None, name: str) -> Tokenizer:
    """Wrap a loaded backend, refusing now (before any encoding) one scarce cannot end documents with or
    count bytes for."""
    eot = next((t for t in (eos, EOT) if t and hf.token_to_id(t) is not None), None)
    if eot is None:
        raise UserError(f"tokenizer {name} names no end-of-text token (eos_token) and has no {EOT}; scarce "
                        "ends every document with one")
    _byte_counter(hf, name)
    tok = Tokenizer(hf, eot, kind, source)
    if tok.eot_id in tok.encode(eot):  # a Unigram model holding the token as a piece matches it in text
        raise UserError(f"tokenizer {name} reads the text {eot} as its end-of-text token even as plain text, "
                        "so a document holding that text would end there; scarce needs one that encodes it as "
                        "text (a byte-level or SentencePiece BPE)")
    return tok


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def load_tokenizer(path: str | os.PathLike, eot_id: int | None = None) -> Tokenizer:
    """Read a `tokenizer.json` written by `Tokenizer.save`; `eot_id` (the store's) names its end-of-text
    token, else `<|endoftext|>`."""
    from tokenizers import Tokenizer as HFTokenizer

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        ref = json.loads(text).get("scarce_tiktoken")
        if ref:
            return TiktokenTokenizer(ref)
        hf = HFTokenizer.from_str(text)
        return Tokenizer(hf, EOT if eot_id is None else hf.id_to_token(eot_id) or EOT)
    except UserError:
        raise
    except Exception as e:  # missing file, bad JSON, or a JSON that `tokenizers` rejects
        raise UserError(f"cannot read tokenizer {path}: {e}; prepare the store again") from None
