"""`scarce prepare` end to end: a summary on success, one `error:` line and status 2 on bad input."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sysconfig
from pathlib import Path

import pytest

from scarce.cli.main import main
from scarce.cli.options import parse_count
from scarce.data.store import open_store


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]
    folder = tmp_path_factory.mktemp("corpus")
    lines = [json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")[:2000]}) for p in files]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f"files:{folder}"


def _args(corpus: str, out: Path, **overrides: str) -> list[str]:
    opts = {"--corpus": corpus, "--out": str(out), "--vocab-size": "300", "--train-tokens": "20k",
            "--select-tokens": "2_000", "--val-tokens": "2e3", **overrides}
    return ["prepare"] + [x for kv in opts.items() for x in kv]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_prepare_prints_summary_and_reuses(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RAYON_RS_NUM_CPUS", "2")  # --threads sets it; restored after the test
    assert main(_args(corpus, tmp_path / "s", **{"--threads": "1"})) == 0
    out = capsys.readouterr().out
    assert "bytes/token" in out and "20,000" in out and f"token store {tmp_path / 's'}" in out
    store = open_store(tmp_path / "s")
    assert [len(store.split(n)) for n in ("train", "select", "val")] == [20_000, 2_000, 2_000]
    assert main(_args(corpus, tmp_path / "s", **{"--threads": "1"})) == 0
    assert "reusing" in capsys.readouterr().out


@pytest.mark.parametrize("option, value, message", [
    ("--train-tokens", "2X", "argument --train-tokens: '2X' is not a count"),
    ("--val-tokens", "0", "not a positive whole number"),
    ("--vocab-size", "12", "--vocab-size must be >= 257"),
    ("--threads", "0", "--threads: must be >= 1"),
    ("--tokenizer", "llama", "unknown tokenizer 'llama'; give 'bpe'"),
    ("--corpus", "ftp:somewhere", "unknown corpus source 'ftp:somewhere'"),
    ("--corpus", "files:/no/such/dir", "does not exist"),
    ("--train-tokens", "1e9", "the corpus holds"),
    ("--seed", "-3", "seed must be an integer in [0, 2^63) (0: the documents' hash order), got -3"),
    ("--piece-bytes", "-5", "argument --piece-bytes: '-5' is not a count"),
    ("--piece-bytes", "1.5", "argument --piece-bytes: '1.5' is not a positive whole number"),
])
def test_bad_input_is_one_line_and_status_2(corpus, tmp_path, capsys, option, value, message):
    assert main(_args(corpus, tmp_path / "s", **{option: value})) == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "s").exists()


def test_near_duplicates_with_a_stream_is_one_line(tmp_path, capsys):
    assert main(_args(f"hf:{tmp_path}", tmp_path / "s", **{"--near-duplicates": "0.5"})) == 2
    assert "--near-duplicates compares each document with the whole corpus" in _error_line(capsys)
    assert not (tmp_path / "s").exists()


def test_piece_bytes_with_a_stream_is_one_line(tmp_path, capsys):
    assert main(_args(f"hf:{tmp_path}", tmp_path / "s", **{"--piece-bytes": "2k"})) == 2
    assert "--piece-bytes orders the pieces of all train documents" in _error_line(capsys)
    assert not (tmp_path / "s").exists()


def test_piece_bytes_cuts_train_into_pieces(corpus, tmp_path, capsys):
    assert main(_args(corpus, tmp_path / "p", **{"--piece-bytes": "500"})) == 0
    assert main(_args(corpus, tmp_path / "w", **{"--piece-bytes": "0"})) == 0
    pieces, whole = open_store(tmp_path / "p").manifest, open_store(tmp_path / "w").manifest
    assert pieces["request"]["piece_bytes"] == 500 and "piece_bytes" not in whole["request"]
    assert pieces["splits"]["train"]["documents"] > 2 * whole["splits"]["train"]["documents"]


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
def test_streamed_corpus_summary_says_what_was_read(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("RAYON_RS_NUM_CPUS", "2")  # --threads sets it; restored after the test
    folder = corpus.removeprefix("files:")
    args = _args(f"hf:{folder}", tmp_path / "s", **{"--threads": "1", "--tokenizer-bytes": "20k",
                                                     "--train-tokens": "5k", "--val-tokens": "1k",
                                                     "--select-tokens": "1k"})
    assert main(args) == 0
    captured = capsys.readouterr()
    assert re.search(r"read [\d.]+ MB in [\d,]+ documents of the stream", captured.out), captured.out
    assert captured.err == ""  # the status line is for terminals only


def test_existing_store_with_other_request(corpus, tmp_path, capsys):
    assert main(_args(corpus, tmp_path / "s")) == 0
    capsys.readouterr()
    assert main(_args(corpus, tmp_path / "s", **{"--train-tokens": "10k"})) == 2
    assert "already holds a different request; choose another folder" in _error_line(capsys)


def test_missing_required_option(capsys):
    assert main(["prepare", "--train-tokens", "1M"]) == 2
    assert "--out" in _error_line(capsys)


@pytest.mark.parametrize("text, value", [("2M", 2_000_000), ("500k", 500_000), ("1e6", 1_000_000),
                                         ("1.5B", 1_500_000_000), ("2_048", 2048), ("7", 7)])
def test_parse_count(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["", "M", "2X", "-5", "1.25k5", "0.5", "1_"])
def test_parse_count_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_count(text)
