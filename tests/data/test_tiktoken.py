"""tiktoken encodings offline: `--tokenizer FILE.tiktoken` and `--tokenizer gpt2` from a local file, converted
into a `tokenizer.json` whose ids equal tiktoken's own. Nothing is downloaded: the ranks are trained here
(tiktoken's educational BPE) and registered under a test definition, since the published files are not on
this machine; tiktoken's real definitions (pattern, special ids, sha256) are read and checked separately."""

from __future__ import annotations

import base64
import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from scarce.cli.main import main
from scarce.data import tokenizer as tk
from scarce.data.prepare import prepare
from scarce.errors import UserError

tiktoken = pytest.importorskip("tiktoken")
pytest.importorskip("transformers")

BUDGETS = {"train_tokens": 3000, "select_tokens": 400, "val_tokens": 400}
TEXT = "def f(x):\n    return x  # caf\u00e9 \u65e5\u672c\u8a9e <|endoftext|> 12345 don't\r\n\n   \U0001f600\n"


def _texts() -> list[str]:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:30]
    return [p.read_text(encoding="utf-8", errors="replace")[:1200] for p in files] + [TEXT]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts()), encoding="utf-8")
    return f"files:{folder}"


def _write_ranks(ranks: dict[bytes, int], path: Path) -> Path:
    lines = (f"{base64.b64encode(t).decode()} {r}\n" for t, r in sorted(ranks.items(), key=lambda x: x[1]))
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module", params=["r50k_base", "cl100k_base"])
def encoding(request, tmp_path_factory):
    """(file, definition, tiktoken.Encoding): ranks trained with the split pattern of a real encoding, special
    tokens at ids with a hole before them (as cl100k_base has), registered by the file's sha256."""
    from tiktoken._educational import bpe_train

    real = tk._tiktoken_definitions()[request.param]
    ranks = bpe_train("".join(_texts())[:40_000], 420, real["pat_str"], visualise=None)
    file = _write_ranks(ranks, tmp_path_factory.mktemp("tt") / "mini.tiktoken")
    specials = {t: len(ranks) + 2 + i for i, t in enumerate(real["special_tokens"])}
    definition = {**real, "sha256": tk._file_sha256(file), "special_tokens": specials, "url": "https://example/mini"}
    reference = tiktoken.Encoding("mini", pat_str=real["pat_str"], mergeable_ranks=ranks, special_tokens=specials)
    return file, definition, reference


@pytest.fixture
def registered(encoding, monkeypatch):
    file, definition, reference = encoding
    monkeypatch.setattr(tk, "_DEFINITIONS", {**tk._tiktoken_definitions(), "mini": definition})
    return file, reference


def test_tiktokens_own_definitions_are_read_without_the_network():
    defs = tk._tiktoken_definitions()
    assert set(defs) == {"r50k_base", "p50k_base", "cl100k_base", "o200k_base"}
    gpt2 = defs[tk.TIKTOKEN_ALIAS["gpt2"]]
    assert gpt2["special_tokens"] == {tk.EOT: 50256} and gpt2["n_vocab"] == 50257
    assert gpt2["sha256"] == "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
    assert gpt2["url"].endswith("/r50k_base.tiktoken")
    assert defs["cl100k_base"]["special_tokens"][tk.EOT] == 100257


def test_a_local_tiktoken_file_gives_tiktokens_ids(registered):
    file, reference = registered
    tok = tk.existing_tokenizer(str(file))
    text = "".join(_texts()) + TEXT
    ids = tok.encode(text)
    assert ids == reference.encode_ordinary(text)  # <|endoftext|> in the text stays text, as in tiktoken
    assert tok.eot_id == reference.eot_token and tok.vocab_size == reference.n_vocab
    assert tok.decode(ids) == text
    assert int(tok.token_bytes()[ids].sum()) == len(text.encode("utf-8"))
    assert tok.describe()["kind"] == "tiktoken" and tok.describe()["source"] == str(file)


def test_a_tiktoken_file_prepares_a_self_contained_store(registered, corpus, tmp_path, monkeypatch):
    file, reference = registered
    store = prepare(corpus, tmp_path / "s", 300, **BUDGETS, tokenizer=str(file))
    assert store.eot_id == reference.eot_token and store.vocab_size == reference.n_vocab
    train = np.asarray(store.split("train"))
    first_doc = list(train[: int(np.argmax(train == store.eot_id))])
    assert first_doc == reference.encode_ordinary(tk.load_tokenizer(store.path / "tokenizer.json",
                                                                  store.eot_id).decode(first_doc))
    # The store reads back with no tiktoken definition (or network) at all.
    monkeypatch.setattr(tk, "_DEFINITIONS", {})
    back = tk.load_tokenizer(store.path / "tokenizer.json", store.eot_id)
    assert back.encode(TEXT) == reference.encode_ordinary(TEXT) and back.eot_id == reference.eot_token


def test_gpt2_offline_from_the_local_folder(encoding, monkeypatch, tmp_path):
    """--tokenizer gpt2 takes r50k_base.tiktoken from scarce's tokenizer folder and never asks tiktoken."""
    file, definition, reference = encoding
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(tk, "_DEFINITIONS", {**tk._tiktoken_definitions(), "r50k_base": definition})

    def no_network(*a, **k):
        raise AssertionError("tiktoken was asked for the file")

    monkeypatch.setattr("tiktoken.load.load_tiktoken_bpe", no_network)
    tk.tiktoken_dir().mkdir(parents=True)
    (tk.tiktoken_dir() / "r50k_base.tiktoken").write_bytes(file.read_bytes())
    tok = tk.existing_tokenizer("gpt2")
    assert tok.encode(TEXT) == reference.encode_ordinary(TEXT) and tok.describe()["kind"] == "gpt2"


def test_gpt2_offline_without_the_file_says_where_to_put_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def offline(*a, **k):
        raise ConnectionError("Failed to resolve 'openaipublic.blob.core.windows.net'\n(more lines)")

    monkeypatch.setattr("tiktoken.load.load_tiktoken_bpe", offline)
    args = ["prepare", "--corpus", "embedded", "--out", str(tmp_path / "s"), "--train-tokens", "3000",
            "--select-tokens", "400", "--val-tokens", "400", "--tokenizer", "gpt2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "ConnectionError" in err
    assert "put r50k_base.tiktoken (from https://openaipublic" in err and str(tmp_path / "scarce" / "tokenizers") in err
    assert not (tmp_path / "s").exists()


def test_tiktoken_files_scarce_cannot_use_are_one_line_errors(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    unknown = tmp_path / "llama.tiktoken"
    unknown.write_text("IQ== 0\n")
    wrong = tk.tiktoken_dir() / "cl100k_base.tiktoken"
    wrong.parent.mkdir(parents=True)
    wrong.write_text("IQ== 0\n")
    cases = [
        (str(unknown), "records neither its split pattern nor its special tokens' ids, and this one is not one"),
        (str(tmp_path / "none.tiktoken"), "no tokenizer file at"),
        ("cl100k_base", "is not tiktoken's cl100k_base (its sha256 differs)"),
    ]
    for spec, match in cases:
        with pytest.raises(UserError) as err:
            tk.existing_tokenizer(spec)
        assert match in str(err.value) and "\n" not in str(err.value)


def test_a_malformed_file_under_a_known_hash_is_named(monkeypatch, tmp_path):
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("IQ== 0\nnot-base64!! x\n")
    fake = {**tk._tiktoken_definitions()["r50k_base"], "sha256": tk._file_sha256(bad)}
    monkeypatch.setattr(tk, "_DEFINITIONS", {"r50k_base": fake})
    with pytest.raises(UserError, match=r"line 2 is not 'BASE64-TOKEN RANK'"):
        tk.existing_tokenizer(str(bad))
