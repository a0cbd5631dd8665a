"""prepare's `doc_bytes`: a corpus of a few long documents cut into pieces before the split, so held-out windows
come one per piece; the split per source document unless `piece_splits`."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest

from scarce.cli.main import main
from scarce.data import split as split_mod
from scarce.data import store as store_mod
from scarce.data.prepare import derive_store, prepare
from scarce.data.split import source_pieces
from scarce.errors import UserError

VOCAB = 320
N_FILES = 5
BUDGETS = {"train_tokens": 20_000, "select_tokens": 3_000, "val_tokens": 3_000}
WINDOW = 256
DOC_BYTES = 2_000
LINE = re.compile(r"W(\d) L(\d{4}) ")
"""Every line starts with its work and line number, so any text says where it came from."""


def _work(i: int, lines: int = 800) -> str:
    rng = random.Random(i)
    words = [rng.choice("bcdfglmnprst") + rng.choice("aeiou") + rng.choice("lmnrst") for _ in range(120)]
    return "".join(f"W{i} L{n:04d} " + " ".join(rng.choices(words, k=9)) + "\n" for n in range(lines))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """5 long works (~40 kB each, as plays or books would be), one .txt file each."""
    folder = tmp_path_factory.mktemp("works")
    for i in range(N_FILES):
        (folder / f"work{i}.txt").write_text(_work(i), encoding="utf-8")
    return f"files:{folder}"


def _prepare(corpus: str, out: Path, **kw):
    return prepare(corpus, out, VOCAB, **{**BUDGETS, "heldout_window": WINDOW, **kw}, log=lambda _: None)


@pytest.fixture(scope="module")
def stores(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    return {"source": _prepare(corpus, root / "source", doc_bytes=DOC_BYTES),
            "piece": _prepare(corpus, root / "piece", doc_bytes=DOC_BYTES, piece_splits=True)}


def _lines(store, split: str) -> set[tuple[str, str]]:
    return set(LINE.findall(store.tokenizer().decode(store.split(split))))


def _works(store, split: str) -> set[str]:
    return {work for work, _ in _lines(store, split)}


def test_whole_works_cannot_give_the_windows(corpus, tmp_path):
    """The problem: one window per document, 5 documents, so val of 3,000 tokens in 256-token windows is refused."""
    pattern = r"1,2\d\d remain for val \(256-token windows, one per document\).*--doc-bytes N"
    with pytest.raises(UserError, match=pattern):
        _prepare(corpus, tmp_path / "whole")
    assert not (tmp_path / "whole").exists()


def test_a_few_long_files_prepare_with_heldout_windows(stores):
    for s in stores.values():
        for name in ("val", "select"):
            tokens = s.split(name)
            assert len(tokens) == BUDGETS[f"{name}_tokens"]
            ends = np.flatnonzero(tokens == s.eot_id)
            assert len(ends) >= BUDGETS[f"{name}_tokens"] // (WINDOW + 1)  # one window per piece, many pieces
            assert np.diff(np.concatenate([[-1], ends])).max() <= WINDOW + 1


def test_pieces_never_leak_across_splits(stores):
    """Per source document (the default): every val and select piece's work is absent from train and from the other
    held-out split."""
    s = stores["source"]
    val, select, train = (_works(s, n) for n in ("val", "select", "train"))
    assert val and select and train
    assert not val & train and not select & train and not val & select
    assert len(val | select | train) <= N_FILES


def test_piece_splits_share_works_but_never_a_line(stores):
    s = stores["piece"]
    val, select, train = (_lines(s, n) for n in ("val", "select", "train"))
    assert not val & train and not select & train and not val & select
    assert {w for w, _ in val} & {w for w, _ in train}  # asked for: one work gives to val and to train


def test_the_manifest_says_which(stores, corpus, tmp_path):
    source, piece = stores["source"].manifest, stores["piece"].manifest
    assert source["request"]["doc_bytes"] == DOC_BYTES and "piece_splits" not in source["request"]
    assert piece["request"]["piece_splits"] is True
    assert source["splits_drawn"] == split_mod.SPLITS_DRAWN_WHOLE + split_mod.DRAWN_DOC_PIECES
    assert piece["splits_drawn"] == split_mod.SPLITS_DRAWN_WHOLE + split_mod.DRAWN_PIECE_SPLITS
    assert _prepare(corpus, stores["source"].path, doc_bytes=DOC_BYTES).fingerprint == stores["source"].fingerprint
    with pytest.raises(UserError, match="already holds a different request"):
        _prepare(corpus, stores["source"].path, doc_bytes=DOC_BYTES, piece_splits=True)


def test_train_budgets_nest(corpus, stores, tmp_path):
    big = _prepare(corpus, tmp_path / "big", doc_bytes=DOC_BYTES, train_tokens=2 * BUDGETS["train_tokens"])
    derived = derive_store(big, tmp_path / "derived", BUDGETS["train_tokens"], log=lambda _: None)
    assert derived.fingerprint == stores["source"].fingerprint


def test_with_piece_bytes_train_pieces_are_reordered(corpus, stores, tmp_path):
    both = _prepare(corpus, tmp_path / "both", doc_bytes=DOC_BYTES, piece_bytes=500)
    for name in ("val", "select"):
        assert np.array_equal(both.split(name), stores["source"].split(name))
    assert not _works(both, "train") & (_works(both, "val") | _works(both, "select"))
    assert both.manifest["splits_drawn"].endswith(split_mod.SPLITS_DRAWN_PIECES.removeprefix(
        split_mod.SPLITS_DRAWN_WHOLE))


def test_source_pieces_group_by_document_and_drop_repeats():
    docs = ["".join(f"d{i} {n} " + "x" * 40 + "\n" for n in range(40)) for i in range(3)]
    docs.append("same line\n" * 210)  # 7 identical pieces
    pieces, sources = source_pieces(docs, 300)
    assert sources == sorted(sources) and set(sources) == {0, 1, 2, 3}
    assert sorted("".join(p for p, s in zip(pieces, sources) if s == 0).splitlines()) == sorted(docs[0].splitlines())
    assert sum(s == 3 for s in sources) == 1  # its pieces are identical: one is kept
    flat, solo = source_pieces(docs, 300, piece_splits=True)
    assert sorted(flat) == sorted(pieces) and solo == list(range(len(flat)))


def test_one_long_document_needs_piece_splits(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "book.txt").write_text(_work(0, 1600), encoding="utf-8")
    corpus = f"files:{tmp_path / 'book'}"
    with pytest.raises(UserError, match=r"holds 1 distinct document\(s\).*--piece-splits"):
        _prepare(corpus, tmp_path / "s", doc_bytes=DOC_BYTES)
    s = _prepare(corpus, tmp_path / "s", doc_bytes=DOC_BYTES, piece_splits=True, train_tokens=8_000)
    assert not _lines(s, "val") & _lines(s, "train")


def _cli(corpus: str, out: Path, *extra: str) -> list[str]:
    return ["prepare", "--corpus", corpus, "--out", str(out), "--vocab-size", str(VOCAB), "--train-tokens", "20k",
            "--select-tokens", "3k", "--val-tokens", "3k", "--heldout-window", str(WINDOW), *extra]  # later wins


@pytest.mark.parametrize("extra, message", [
    (["--doc-bytes", "-5"], "argument --doc-bytes: '-5' is not a count"),
    (["--doc-bytes", "lots"], "argument --doc-bytes: 'lots' is not a count"),
    (["--piece-splits"], "--piece-splits splits the pieces that --doc-bytes cuts; give --doc-bytes N as well"),
    (["--doc-bytes", "1M"], "too few"),  # each work one piece: too few windows again
    (["--doc-bytes", "2k", "--val-tokens", "10k", "--select-tokens", "10k"],
     "remain for select after val (256-token windows, one per piece)"),
    (["--doc-bytes", "2k", "--val-tokens", "10k", "--select-tokens", "10k"], "or cut smaller pieces (--doc-bytes)"),
])
def test_bad_values_are_one_line_errors(corpus, tmp_path, capsys, extra, message):
    assert main(_cli(corpus, tmp_path / "s", *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_stream_is_refused(tmp_path, capsys):
    assert main(_cli(f"hf:{tmp_path}", tmp_path / "s", "--doc-bytes", "2k")) == 2
    assert "--doc-bytes cuts every document before the corpus is split" in capsys.readouterr().err


def test_the_cli_prepares_a_folder_of_works(corpus, tmp_path, capsys):
    assert main(_cli(corpus, tmp_path / "s", "--doc-bytes", "2k")) == 0
    assert "token store" in capsys.readouterr().out
    assert store_mod.open_store(tmp_path / "s").manifest["request"]["doc_bytes"] == 2_000
