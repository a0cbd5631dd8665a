"""prepare's `piece_bytes`: train from pieces of documents in their hash order, the split still by document."""

from __future__ import annotations

import json
import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from scarce.data import split as split_mod
from scarce.data.prepare import derive_store, prepare
from scarce.data.split import PrepareRequest, cut_pieces, train_pieces
from scarce.errors import UserError

VOCAB = 320
N_DOCS = 80
BUDGETS = {"train_tokens": 6_000, "select_tokens": 4_000, "val_tokens": 4_000}
MARK = re.compile(r"^D(\d{3}) ", re.MULTILINE)
REQUEST_KEYS = {"source", "vocab_size", "train_tokens", "select_tokens", "val_tokens", "tokenizer", "tokenizer_bytes",
                "near_duplicates", "heldout_window", "seed"}
"""The manifest's request before piece_bytes: a store with piece_bytes 0 must keep exactly these."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """80 documents of ~4 kB of real code, every line marked with its document (`Dnnn `), so any piece says where
    it came from."""
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:N_DOCS]
    texts = []
    for i, p in enumerate(files):
        lines = p.read_text(encoding="utf-8", errors="replace")[:4000].splitlines()
        texts.append("".join(f"D{i:03d} {line}\n" for line in lines))
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return f"files:{folder}"


def _prepare(corpus: str, out: Path, **kw):
    return prepare(corpus, out, VOCAB, **{**BUDGETS, **kw}, log=lambda _: None)


@pytest.fixture(scope="module")
def stores(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    return {"whole": _prepare(corpus, root / "whole"), "pieces": _prepare(corpus, root / "pieces", piece_bytes=512)}


def _files(store, split: str) -> set[str]:
    return set(MARK.findall(store.tokenizer().decode(store.split(split))))


def test_cut_pieces_at_line_ends_of_about_the_size():
    doc = "".join(f"line {i:04d} " + "x" * (i % 50) + "\n" for i in range(400))
    pieces = cut_pieces(doc, 1000)
    assert "".join(pieces) == doc and all(p.endswith("\n") for p in pieces)
    assert len(pieces) == round(len(doc) / 1000)
    assert max(len(p) for p in pieces) < 1.1 * len(doc) / len(pieces)  # no short remainder
    assert cut_pieces("short\n", 1000) == ["short\n"] and cut_pieces("x" * 5000, 100) == ["x" * 5000]


def test_a_small_budget_spans_many_more_documents(stores):
    whole, pieces = len(_files(stores["whole"], "train")), len(_files(stores["pieces"], "train"))
    assert whole <= 4 and pieces >= 4 * whole, (whole, pieces)
    counts = stores["pieces"].manifest["splits"]["train"]["documents"]  # the pieces, each ending with EOT
    assert counts >= pieces and stores["pieces"].split("train")[-1] != stores["pieces"].eot_id  # the last one cut


def test_no_document_gives_to_train_and_to_val_or_select(stores):
    s = stores["pieces"]
    held = _files(s, "val") | _files(s, "select")
    assert held and not _files(s, "train") & held
    for name in ("val", "select"):  # the held-out splits are the whole-document store's
        assert np.array_equal(s.split(name), stores["whole"].split(name))
    assert s.manifest["tokenizer"]["sha256"] == stores["whole"].manifest["tokenizer"]["sha256"]


def test_pieces_nest_across_train_budgets(corpus, stores, tmp_path):
    big = _prepare(corpus, tmp_path / "big", piece_bytes=512, train_tokens=4 * BUDGETS["train_tokens"])
    small = stores["pieces"]
    assert np.array_equal(big.split("train")[:len(small.split("train"))], small.split("train"))
    derived = derive_store(big, tmp_path / "derived", BUDGETS["train_tokens"], log=lambda _: None)
    assert derived.fingerprint == small.fingerprint
    assert derived.manifest["request"] == small.manifest["request"]


def test_the_seed_reorders_the_pieces(corpus, stores, tmp_path):
    other = _prepare(corpus, tmp_path / "seed1", piece_bytes=512, seed=1)
    assert not np.array_equal(other.split("train"), stores["pieces"].split("train"))
    docs = [f"D{i:03d} " + "y" * 60 + f" {j}\n" for i in range(10) for j in range(20)]
    orders = [train_pieces(["".join(docs[i * 20:(i + 1) * 20]) for i in range(10)], 200, seed) for seed in (0, 1)]
    assert sorted(orders[0]) == sorted(orders[1]) and orders[0] != orders[1]


def test_the_manifest_records_piece_bytes_only_when_set(stores):
    pieces, whole = stores["pieces"].manifest, stores["whole"].manifest
    assert pieces["request"]["piece_bytes"] == 512 and pieces["splits_drawn"] == split_mod.SPLITS_DRAWN_PIECES
    assert set(whole["request"]) == REQUEST_KEYS and whole["splits_drawn"] == split_mod.SPLITS_DRAWN_WHOLE


def test_zero_keeps_the_whole_document_fill(corpus, stores):
    """piece_bytes 0 is the store of before: train is whole documents, consecutive in the hash order."""
    s = stores["whole"]
    texts = s.tokenizer().decode(s.split("train")).split("<|endoftext|>")
    docs, _ = split_mod.ordered_documents(corpus)
    first = docs.index(texts[0])
    assert texts[:-1] == docs[first:first + len(texts) - 1] and docs[first + len(texts) - 1].startswith(texts[-1])


def test_reuse_and_a_different_piece_size(corpus, stores, tmp_path):
    out = stores["pieces"].path
    assert _prepare(corpus, out, piece_bytes=512).fingerprint == stores["pieces"].fingerprint
    with pytest.raises(UserError, match="already holds a different request"):
        _prepare(corpus, out, piece_bytes=1024)
    with pytest.raises(UserError, match="already holds a different request"):
        _prepare(corpus, stores["whole"].path, piece_bytes=512)


def test_bad_piece_bytes_and_streams_are_refused(corpus, tmp_path):
    with pytest.raises(UserError, match="piece_bytes must be a positive integer, got -1"):
        PrepareRequest(corpus, VOCAB, 1, 1, 1, piece_bytes=-1)
    with pytest.raises(UserError, match="--piece-bytes orders the pieces of all train documents"):
        PrepareRequest(f"hf:{tmp_path}", VOCAB, 1, 1, 1, piece_bytes=2048)


def test_too_few_train_tokens_in_pieces(corpus, tmp_path):
    with pytest.raises(UserError, match=r"documents left for train after val and select hold [\d,]+ tokens \(in "):
        _prepare(corpus, tmp_path / "s", piece_bytes=512, train_tokens=10**7)
    assert not (tmp_path / "s").exists()
