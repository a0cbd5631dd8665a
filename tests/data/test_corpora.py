"""Corpus sources: what each yields, in what order, and the one-line errors for bad sources."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from scarce.data import corpora
from scarce.data.corpora import describe, iter_documents, read_corpus
from scarce.errors import UserError


def _write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")


def test_stdlib_is_sorted_python_source_and_deterministic():
    first = list(zip(range(5), iter_documents("stdlib")))
    again = list(zip(range(5), iter_documents("stdlib")))
    assert first == again
    assert all(doc.strip() for _, doc in first)
    assert "standard library" in describe("stdlib")


def test_stdlib_leaves_out_site_packages(monkeypatch, tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "site-packages" / "pkg").mkdir(parents=True)
    (tmp_path / "site-packages" / "pkg" / "b.py").write_text("y = 2\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.py").write_bytes(b"z = '\xff'\n")  # not UTF-8: replaced, not fatal
    monkeypatch.setattr(corpora, "_stdlib_root", lambda: tmp_path)
    assert list(iter_documents("stdlib")) == ["x = 1\n", "z = '\ufffd'\n"]


def test_txt_file_is_one_document_unless_separated(tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("first line\n\nsecond paragraph\n")
    assert list(iter_documents(f"files:{one}")) == ["first line\n\nsecond paragraph\n"]
    many = tmp_path / "many.txt"
    many.write_text("doc a\n<|endoftext|>\ndoc b\nmore b\n<|endoftext|>\n\n")
    assert list(iter_documents(f"files:{many}")) == ["doc a\n", "doc b\nmore b\n"]


def test_jsonl_and_folders_sorted_recursive(tmp_path):
    (tmp_path / "b").mkdir()
    _write_jsonl(tmp_path / "b" / "x.jsonl", ["b1", "   ", "b2"])
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "notes.md").write_text("ignored: not .txt or .jsonl")
    assert list(iter_documents(f"files:{tmp_path}")) == ["a", "b1", "b2"]


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2 .*'text'"):
        list(iter_documents(f"files:{path}"))


@pytest.mark.parametrize("source, message", [
    ("nosuch", "unknown corpus source"),
    ("files:", "unknown corpus source"),
    ("stdlib:extra", "unknown corpus source"),
    ("files:/no/such/path", "does not exist"),
])
def test_bad_sources(source, message):
    with pytest.raises(UserError, match=message):
        iter_documents(source)


def test_wrong_suffix_and_empty_folder(tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n")
    with pytest.raises(UserError, match="neither .txt nor .jsonl"):
        iter_documents(f"files:{csv}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no .txt or .jsonl"):
        iter_documents(f"files:{empty}")


def test_empty_corpus(tmp_path):
    _write_jsonl(tmp_path / "blank.jsonl", ["", "  \n", "\t"])
    with pytest.raises(UserError, match="no non-empty documents"):
        read_corpus(f"files:{tmp_path}")


def test_invalid_utf8_is_a_user_error(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match="not valid UTF-8"):
        read_corpus(f"files:{tmp_path}")


def test_fingerprint_ignores_order():
    hashes = [corpora.document_hash(t) for t in ["a", "b", "c"]]
    assert corpora.fingerprint(hashes) == corpora.fingerprint(hashes[::-1])
    assert corpora.fingerprint(hashes) != corpora.fingerprint(hashes[:2])


def test_hf_without_datasets_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(UserError, match=r"pip install 'scarce\[hf\]'"):
        iter_documents("hf:anything")


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
def test_hf_local_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    data = tmp_path / "corpus"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", ["one", "two", " "])
    assert list(iter_documents(f"hf:{data}")) == ["one", "two"]
    with pytest.raises(UserError, match="could not load"):
        iter_documents(f"hf:{tmp_path / 'missing'}")
