"""Existing tokenizers (`--tokenizer hf:NAME_OR_PATH`, a tokenizer.json file): stores prepared with tiny
GPT-2-style, Llama-3-style and SentencePiece-style tokenizers built here, their end-of-text token, the bytes
each token stands for, the sha256 that ties a store to its model, and the one-line errors. Nothing is
downloaded: every tokenizer is built in a tmp folder, the hub cache is a tmp folder laid out by hand."""

from __future__ import annotations

import hashlib
import json
import string
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as HFTokenizer

from scarce.cli.main import main
from scarce.data.prepare import prepare
from scarce.data.store import SPLITS, open_store
from scarce.data.tokenizer import EOT, hf_tokenizer, parse_tokenizer_spec, tokenizer_file
from scarce.errors import UserError

transformers = pytest.importorskip("transformers")

BUDGETS = {"train_tokens": 4000, "select_tokens": 500, "val_tokens": 500}
# Llama 3's split pattern: byte-level BPE behind a regex Split rather than ByteLevel's own regex.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
TEXT = "def f(x):\n    return x  # caf\u00e9 \u65e5\u672c\u8a9e <|endoftext|> </s> <|end_of_text|> \U0001f600\n"


def _texts() -> list[str]:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:40]
    docs = [p.read_text(encoding="utf-8", errors="replace")[:1000] for p in files]
    return docs + [f"note {i}: caf\u00e9 \u65e5\u672c\u8a9e, <|endoftext|> and </s> are plain text here\n" for i in range(3)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts()), encoding="utf-8")
    return f"files:{folder}"


def _byte_level_bpe(specials: list[str], pre_tokenizer) -> HFTokenizer:
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizer
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(_texts(), trainer)
    return hf


def gpt2_style() -> tuple[HFTokenizer, dict]:
    return _byte_level_bpe([EOT], pre_tokenizers.ByteLevel(add_prefix_space=False)), {"eos_token": EOT}


def llama3_style() -> tuple[HFTokenizer, dict]:
    """A regex Split then ByteLevel, a BOS post-processor (which prepare must not apply), its own end-of-text,
    and a plain-text added token whose characters are not ByteLevel's (so it decodes as its own UTF-8)."""
    split = pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated")
    hf = _byte_level_bpe(["<|begin_of_text|>", "<|end_of_text|>"],
                         pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                                  use_regex=False)]))
    hf.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", hf.token_to_id("<|begin_of_text|>"))])
    hf.add_tokens([AddedToken("\u65e5\u672c\u8a9e", special=False, normalized=False)])
    return hf, {"eos_token": "<|end_of_text|>", "bos_token": "<|begin_of_text|>"}


def sentencepiece_style() -> tuple[HFTokenizer, dict]:
    """Llama 2's layout: a BPE over ASCII characters with byte fallback (<0xNN> pieces) for everything else,
    spaces written as U+2581 and one prepended to each text."""
    words = ["\u2581the", "\u2581return", "\u2581def", "\u2581self", "\u2581import", "\u2581\u2581\u2581\u2581"]
    merges = list(dict.fromkeys((w[:k], w[k]) for w in words for k in range(1, len(w))))
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    pieces += [c for c in string.printable if c != " "] + ["\u2581"] + [a + b for a, b in merges]
    vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
    hf = HFTokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    hf.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    hf.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    hf.add_special_tokens(["<unk>", "<s>", "</s>"])
    return hf, {"eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>"}


STYLES = {"gpt2": (gpt2_style, EOT, 0), "llama3": (llama3_style, "<|end_of_text|>", 0),
          "sentencepiece": (sentencepiece_style, "</s>", 1)}  # (builder, end-of-text, prepended space bytes)


def save_model_folder(folder: Path, build) -> Path:
    hf, special = build()
    transformers.PreTrainedTokenizerFast(tokenizer_object=hf, **special).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: save_model_folder(root / name, build) for name, (build, _, _) in STYLES.items()}


@pytest.fixture(scope="module")
def stores(corpus, folders, tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    return {name: prepare(corpus, root / name, 300, **BUDGETS, tokenizer=f"hf:{folders[name]}", log=lambda _: None)
            for name in STYLES}


@pytest.mark.parametrize("name", list(STYLES))
def test_store_records_the_tokenizer_and_its_sha256(name, folders, stores):
    store, eot = stores[name], STYLES[name][1]
    backend = HFTokenizer.from_file(str(folders[name] / "tokenizer.json"))
    m = store.manifest["tokenizer"]
    assert m["kind"] == "hf" and m["source"] == str(folders[name].resolve()) and m["eot_token"] == eot
    assert m["eot_id"] == store.eot_id == backend.token_to_id(eot)
    assert m["vocab_size"] == store.vocab_size == backend.get_vocab_size(with_added_tokens=True)
    assert m["heldout"] == {"documents": 0, "bytes": 0}  # nothing is trained, nothing held out
    tok = hf_tokenizer(str(folders[name]))
    stored = (store.path / "tokenizer.json").read_bytes()
    assert stored == tok.to_json().encode() and hashlib.sha256(stored).hexdigest() == m["sha256"]
    assert hashlib.sha256(tok.to_json().encode()).hexdigest() == m["sha256"]
    store.verify()


@pytest.mark.parametrize("name", list(STYLES))
def test_reopened_tokenizer_round_trips_and_counts_bytes(name, stores):
    store, prepended = stores[name], STYLES[name][2]
    tok = open_store(store.path).tokenizer()
    assert tok.eot_id == store.eot_id
    ids = tok.encode(TEXT)
    assert tok.decode(ids) == TEXT
    special = {i for i, t in tok._hf.get_added_tokens_decoder().items() if t.special}
    assert store.eot_id in special and not special & set(ids)  # special strings in a text stay text; no BOS
    tb = store.token_bytes()
    assert tb.shape == (store.vocab_size,) and tb.dtype == np.int32 and tb[store.eot_id] == 0
    # A SentencePiece tokenizer writes the space it prepends to a text as a token byte.
    assert int(tb[ids].sum()) == len(TEXT.encode("utf-8")) + prepended


@pytest.mark.parametrize("name", list(STYLES))
def test_splits_end_documents_with_the_eot_and_bytes_add_up(name, stores):
    store, prepended = stores[name], STYLES[name][2]
    tok = store.tokenizer()
    for split in SPLITS:
        tokens = np.asarray(store.split(split))
        assert len(tokens) == BUDGETS[f"{split}_tokens"]
        docs = int((tokens == store.eot_id).sum())
        assert store.manifest["splits"][split]["documents"] in (docs, docs + 1)
        text = tok.decode(tokens[tokens != store.eot_id])
        # The decoder strips the prepended space of the split's first document only.
        assert store.split_bytes(split) == len(text.encode("utf-8")) + prepended


def test_added_token_outside_the_byte_alphabet_counts_its_utf8(stores):
    tok = stores["llama3"].tokenizer()
    word = "\u65e5\u672c\u8a9e"
    assert tok.encode(word) == [tok._hf.token_to_id(word)]
    assert stores["llama3"].token_bytes()[tok.encode(word)[0]] == len(word.encode("utf-8")) == 9


def test_metaspace_decoder_counts_the_marker_as_one_space(tmp_path):
    vocab = [("<unk>", 0.0)] + [(c, -5.0) for c in "abcdefghij\u2581"] + [("\u2581abc", -1.0)]
    hf = HFTokenizer(models.Unigram(vocab, unk_id=0))
    hf.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    hf.decoder = decoders.Metaspace(prepend_scheme="always")
    hf.add_special_tokens([EOT])
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = tokenizer_file(str(tmp_path / "tokenizer.json"))
    ids = tok.encode("abc cab ji")
    assert tok.decode(ids) == "abc cab ji"
    assert int(tok.token_bytes()[ids].sum()) == len("abc cab ji") + 1  # the prepended space
    assert tok.describe()["kind"] == "json" and tok.eot == EOT


def test_classic_gpt2_files_and_a_tokenizer_json_file(tmp_path, corpus, folders):
    """A GPT-2 folder of vocab.json + merges.txt loads through transformers as a fast tokenizer; a bare
    tokenizer.json prepares the same tokens."""
    hf, _ = gpt2_style()
    classic = tmp_path / "classic"
    classic.mkdir()
    hf.model.save(str(classic))
    (classic / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    tok = hf_tokenizer(str(classic))
    assert tok.eot == EOT and tok.decode(tok.encode(TEXT)) == TEXT
    by_file = prepare(corpus, tmp_path / "s", 300, **BUDGETS, tokenizer=str(folders["gpt2"] / "tokenizer.json"),
                      log=lambda _: None)
    by_folder = prepare(corpus, tmp_path / "s2", 300, **BUDGETS, tokenizer=f"hf:{folders['gpt2']}",
                        log=lambda _: None)
    assert by_file.manifest["tokenizer"]["kind"] == "json"
    assert all(np.array_equal(by_file.split(n), by_folder.split(n)) for n in SPLITS)


def test_hub_name_resolves_from_the_local_cache_only(tmp_path, monkeypatch, folders):
    from huggingface_hub import constants

    snapshot = tmp_path / "hub" / "models--tiny-org--tiny-gpt2" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for f in folders["gpt2"].iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (snapshot / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    tok = hf_tokenizer("tiny-org/tiny-gpt2")
    assert tok.source == "tiny-org/tiny-gpt2" and tok.eot == EOT
    assert tok.to_json() == hf_tokenizer(str(folders["gpt2"])).to_json()
    with pytest.raises(UserError, match="nothing was downloaded") as e:
        hf_tokenizer("tiny-org/absent")
    assert "\n" not in str(e.value) and "local Hugging Face cache" in str(e.value)


def test_reuse_checks_the_tokenizer(corpus, folders, tmp_path):
    folder = save_model_folder(tmp_path / "m", gpt2_style)
    kwargs = dict(vocab_size=300, **BUDGETS, tokenizer=f"hf:{folder}", log=lambda _: None)
    first = prepare(corpus, tmp_path / "s", **kwargs)
    assert prepare(corpus, tmp_path / "s", **kwargs).fingerprint == first.fingerprint
    save_model_folder(folder, llama3_style)  # the same folder now holds another tokenizer
    with pytest.raises(UserError, match="another version of the tokenizer"):
        prepare(corpus, tmp_path / "s", **kwargs)


def _one_line_error(call, match: str) -> str:
    with pytest.raises(UserError) as e:
        call()
    assert match in str(e.value) and "\n" not in str(e.value), str(e.value)
    return str(e.value)


def _wordpiece_json(path: Path) -> Path:
    hf = HFTokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2, EOT: 3}, unk_token="[UNK]"))
    hf.decoder = decoders.WordPiece()
    hf.save(str(path))
    return path


def _unigram_with_eos_piece(path: Path) -> Path:
    """A Unigram whose model holds "</s>" as a piece (T5-style): it matches that text as the token."""
    vocab = [("<unk>", 0.0), ("</s>", 0.0)] + [(c, -5.0) for c in "<>/abcs\u2581"]
    hf = HFTokenizer(models.Unigram(vocab, unk_id=0))
    hf.pre_tokenizer = pre_tokenizers.Metaspace()
    hf.decoder = decoders.Metaspace()
    hf.add_special_tokens(["</s>"])
    path.mkdir()
    hf.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    return path


def test_errors_are_one_line(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tokenizer.json").write_text("{not json")
    (tmp_path / "byt5").mkdir()  # a tokenizer transformers has only in Python
    (tmp_path / "byt5" / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "ByT5Tokenizer"}))
    hf, _ = sentencepiece_style()
    hf.save(str(tmp_path / "sp.json"))
    cases = [
        (lambda: hf_tokenizer(str(tmp_path / "nowhere" / "m")), "no model folder at"),
        (lambda: hf_tokenizer(str(tmp_path / "empty")), "holds no tokenizer"),
        (lambda: hf_tokenizer("no-such-org/no-such-model"), "neither a local model folder nor"),
        (lambda: hf_tokenizer(str(tmp_path / "bad")), "cannot load a tokenizer from"),
        (lambda: hf_tokenizer(str(tmp_path / "sp.json")), "is a file, not a model folder"),
        (lambda: hf_tokenizer(str(tmp_path / "byt5")), "has no fast version"),
        (lambda: tokenizer_file(str(tmp_path / "bad" / "tokenizer.json")), "cannot read tokenizer"),
        (lambda: tokenizer_file(str(tmp_path / "none.json")), "no tokenizer file at"),
        (lambda: tokenizer_file(str(tmp_path / "sp.json")), "names no end-of-text token"),
        (lambda: tokenizer_file(str(_wordpiece_json(tmp_path / "wp.json"))), "neither byte-level nor SentencePiece"),
        (lambda: hf_tokenizer(str(_unigram_with_eos_piece(tmp_path / "t5"))), "reads the text </s>"),
        (lambda: parse_tokenizer_spec("wordpiece"), "unknown tokenizer 'wordpiece'; give 'bpe'"),
        (lambda: parse_tokenizer_spec("hf:"), "unknown tokenizer 'hf:'"),
    ]
    for call, match in cases:
        _one_line_error(call, match)
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    _one_line_error(lambda: hf_tokenizer(str(tmp_path / "bad")), "pip install 'scarce[hf]'")


def test_cli_prepares_with_an_hf_tokenizer(corpus, folders, tmp_path, capsys):
    args = ["prepare", "--corpus", corpus, "--out", str(tmp_path / "s"), "--train-tokens", "4000",
            "--select-tokens", "500", "--val-tokens", "500", "--tokenizer", f"hf:{folders['llama3']}"]
    assert main(args) == 0
    assert f"tokenizer hf:{folders['llama3'].resolve()}" in capsys.readouterr().out
    assert open_store(tmp_path / "s").manifest["request"]["tokenizer"] == f"hf:{folders['llama3']}"
