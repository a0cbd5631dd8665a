"""Streaming prepare (`hf:` sources): bounded reading, splits by document hash, nesting, progress, refusals.

The corpora are local folders of jsonl files read through `datasets` offline (nothing is downloaded).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from scarce.data import corpora
from scarce.data import split as split_mod
from scarce.data import stream as stream_mod
from scarce.data.prepare import derive_store, prepare
from scarce.data.store import SPLITS
from scarce.data.stream import split_of, stream_shares
from scarce.errors import UserError
from scarce.progress import StatusLine

pytestmark = pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")

VOCAB = 300
SAMPLE = 100_000  # tokenizer_bytes: a small sample, so a 3 MB corpus is much larger than what is read
BUDGETS = {"train_tokens": 30_000, "select_tokens": 3_000, "val_tokens": 3_000}
N_DOCS = 2_000
MARK = re.compile(r"(MARK|OTHER)(\d{5})X")


@pytest.fixture(autouse=True)
def offline(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf_home"))


def _texts(tag: str, n: int) -> list[str]:
    """n unique documents: a marker, then 1.5 kB of a stdlib module (real text for the BPE)."""
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:150]
    bodies = [p.read_text(encoding="utf-8", errors="replace")[:1500] for p in files]
    return [f"{tag}{i:05d}X\n{bodies[i % len(bodies)]}" for i in range(n)]


def _write_hf(folder: Path, texts: list[str], parts: int = 2) -> str:
    folder.mkdir(parents=True)
    size = -(-len(texts) // parts)
    for k in range(parts):
        lines = [json.dumps({"text": t}) + "\n" for t in texts[k * size:(k + 1) * size]]
        (folder / f"part-{k:03d}.jsonl").write_text("".join(lines), encoding="utf-8")
    return f"hf:{folder}"


def _quiet(**kwargs):
    return {"log": lambda _: None, "threads": 1, "tokenizer_bytes": SAMPLE, **kwargs}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return _write_hf(tmp_path_factory.mktemp("c") / "hf", _texts("MARK", N_DOCS))


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    return prepare(corpus, tmp_path_factory.mktemp("s") / "base", VOCAB, **BUDGETS, **_quiet())


def _shas(store) -> dict:
    m = store.manifest
    return {"tokenizer": m["tokenizer"]["sha256"], **{n: m["splits"][n]["sha256"] for n in SPLITS}}


def _markers(store, name: str) -> set[str]:
    return {m.group(0) for m in MARK.finditer(store.tokenizer().decode(store.split(name)))}


def test_reads_a_bounded_prefix_and_is_deterministic(corpus, built, tmp_path, monkeypatch):
    pulled, unpatched = [], corpora.iter_documents

    def counting(source):
        for doc in unpatched(source):
            pulled.append(doc)
            yield doc

    monkeypatch.setattr(corpora, "iter_documents", counting)
    again = prepare(corpus, tmp_path / "again", VOCAB, **BUDGETS, **_quiet())
    m = again.manifest
    assert _shas(again) == _shas(built)
    assert m["splits_drawn"] == stream_mod.SPLITS_DRAWN_STREAM
    assert len(pulled) == m["corpus"]["documents_read"] < N_DOCS / 10  # stopped long before the end
    assert m["corpus"]["bytes_read"] == sum(len(d.encode()) for d in pulled)
    assert m["tokenizer"]["sample"]["bytes"] <= SAMPLE
    assert [len(again.split(n)) for n in SPLITS] == [30_000, 3_000, 3_000]


def test_splits_follow_the_hash_thresholds_and_are_disjoint(built):
    shares = built.manifest["corpus"]["shares"]
    assert shares == stream_shares({"val": 3_000, "select": 3_000}, SAMPLE)
    by_marker = {t.split("\n", 1)[0]: split_of(corpora.document_hash(t), shares) for t in _texts("MARK", N_DOCS)}
    seen = {name: _markers(built, name) for name in SPLITS}
    for name in SPLITS:
        assert seen[name] and all(by_marker[m] == name for m in seen[name])
    assert not (seen["train"] & seen["select"] or seen["train"] & seen["val"] or seen["select"] & seen["val"])


def test_shares_depend_on_heldout_budgets_not_on_train():
    small = stream_shares({"val": 1_000, "select": 2_000, "train": 10}, 1_000_000)
    assert small == stream_shares({"val": 1_000, "select": 2_000, "train": 10**9}, 1_000_000)
    assert small["val"] == pytest.approx(0.006) and small["select"] == pytest.approx(0.012)
    capped = stream_shares({"val": 10**6, "select": 10**6}, 1_000)
    assert capped["val"] == capped["select"] == stream_mod.MAX_HELDOUT_SHARE and capped["train"] == 0.5
    # u = 0 and u just below 1 land at the two ends
    assert split_of(bytes(32), small) == "val" and split_of(b"\xff" * 32, small) == "train"


def test_a_document_keeps_its_split_when_the_corpus_doubles(corpus, built, tmp_path):
    """The 2x corpus interleaves as many other documents; with one tokenizer for both (token counts equal),
    each split of the 2x store holds, of the 1x documents, a prefix of what the 1x store's split holds."""
    texts, others = _texts("MARK", N_DOCS), _texts("OTHER", N_DOCS)
    doubled = _write_hf(tmp_path / "2x", [t for pair in zip(texts, others) for t in pair])
    tokenizer = str(built.path / "tokenizer.json")
    one = prepare(corpus, tmp_path / "1x", VOCAB, **BUDGETS, **_quiet(tokenizer=tokenizer))
    two = prepare(doubled, tmp_path / "2x-store", VOCAB, **BUDGETS, **_quiet(tokenizer=tokenizer))
    assert one.manifest["corpus"]["shares"] == two.manifest["corpus"]["shares"]
    for name in SPLITS:
        ones = _markers(one, name)
        from_1x = {m for m in _markers(two, name) if m.startswith("MARK")}
        assert from_1x and from_1x <= ones, name
        for other in set(SPLITS) - {name}:
            assert not ones & _markers(two, other)


def test_nested_train_budgets_and_derive_store(corpus, built, tmp_path):
    half = prepare(corpus, tmp_path / "half", VOCAB, **{**BUDGETS, "train_tokens": 15_000}, **_quiet())
    assert np.array_equal(half.split("train"), built.split("train")[:15_000])
    derived = derive_store(built, tmp_path / "derived", 15_000, log=lambda _: None)
    assert _shas(derived) == _shas(half)


def test_reuse_reads_the_prefix_again(corpus, built, tmp_path):
    logged = []
    again = prepare(corpus, built.path, VOCAB, **BUDGETS, **_quiet(log=logged.append))
    assert "reusing" in logged[0] and again.fingerprint == built.fingerprint
    texts = _texts("MARK", N_DOCS)
    folder = tmp_path / "changed"
    store = prepare(_write_hf(folder, texts), tmp_path / "s", VOCAB, **BUDGETS, **_quiet())
    (folder / "part-001.jsonl").write_text(json.dumps({"text": "appended past the prefix"}) + "\n")
    assert prepare(f"hf:{folder}", tmp_path / "s", VOCAB, **BUDGETS, **_quiet()).fingerprint == store.fingerprint
    (folder / "part-000.jsonl").write_text(json.dumps({"text": "a new first document"}) + "\n")
    with pytest.raises(UserError, match="changed since"):
        prepare(f"hf:{folder}", tmp_path / "s", VOCAB, **BUDGETS, **_quiet())


def test_duplicates_are_dropped_as_the_stream_goes(tmp_path):
    texts = _texts("MARK", 400)
    store = prepare(_write_hf(tmp_path / "dup", [t for t in texts for _ in range(2)]), tmp_path / "s", VOCAB,
                    **BUDGETS, **_quiet())
    c = store.manifest["corpus"]
    # each document came twice; reading stopped right after the first copy of the last one used
    assert c["duplicates_dropped"] == c["documents_read"] - c["documents"] == c["documents"] - 1
    decoded = "".join(store.tokenizer().decode(store.split(n)) for n in SPLITS)
    counts = [len(re.findall(f"MARK{i:05d}X", decoded)) for i in range(400)]
    assert max(counts) == 1


def test_heldout_window_works_while_streaming(corpus, tmp_path):
    win = prepare(corpus, tmp_path / "win", VOCAB, **BUDGETS, **_quiet(heldout_window=50))
    for name in ("select", "val"):
        ends = np.flatnonzero(win.split(name) == win.eot_id)
        assert np.diff(np.concatenate([[-1], ends])).max() <= 51  # each piece: at most 50 tokens and EOT
        assert win.manifest["splits"][name]["documents"] >= 3_000 // 51
    again = prepare(corpus, tmp_path / "win2", VOCAB, **BUDGETS, **_quiet(heldout_window=50))
    assert _shas(again) == _shas(win)


def test_budget_beyond_the_stream_fails_and_writes_nothing(corpus, tmp_path):
    with pytest.raises(UserError, match=r"the corpus holds too few tokens .* lower the train budget to at most"):
        prepare(corpus, tmp_path / "big", VOCAB, **{**BUDGETS, "train_tokens": 10_000_000}, **_quiet())
    assert not (tmp_path / "big").exists()
    assert not list(tmp_path.glob(".big*"))


def test_a_stream_shorter_than_its_sample_is_split_whole_like_files(tmp_path):
    """A small hf: folder gives the same store as the same documents given as files:."""
    texts = _texts("MARK", 160)
    hf = prepare(_write_hf(tmp_path / "hf", texts), tmp_path / "a", VOCAB, **BUDGETS, **_quiet(tokenizer_bytes=0))
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "d.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    local = prepare(f"files:{tmp_path / 'files'}", tmp_path / "b", VOCAB, **BUDGETS, **_quiet(tokenizer_bytes=0))
    assert _shas(hf) == _shas(local)
    assert hf.manifest["splits_drawn"] == stream_mod.SPLITS_DRAWN_SMALL_STREAM
    assert local.manifest["splits_drawn"] == split_mod.SPLITS_DRAWN_WHOLE
    assert hf.manifest["corpus"]["documents_read"] == 160
    with pytest.raises(UserError, match="the corpus holds"):  # the error of a local corpus too small
        prepare(f"hf:{tmp_path / 'hf'}", tmp_path / "c", VOCAB, **{**BUDGETS, "train_tokens": 10**7}, **_quiet())


def test_near_duplicates_are_refused_for_a_stream(corpus, tmp_path):
    with pytest.raises(UserError, match=r"--near-duplicates .* streamed, never held whole; .* files:PATH"):
        prepare(corpus, tmp_path / "s", VOCAB, **BUDGETS, **_quiet(near_duplicates=0.5))


def test_read_corpus_refuses_a_stream(corpus):
    with pytest.raises(UserError, match="streamed"):
        corpora.read_corpus(corpus)


def test_progress_line_has_the_fields(corpus, tmp_path, capsys):
    lines = []
    prepare(corpus, tmp_path / "s", VOCAB, **BUDGETS, **_quiet(progress=lines.append))
    assert re.search(r"prepare: [\d,]+ documents, [\d.]+ MB read \([\d.]+ MB/s\) \| tokens "
                     r"train 30,000/30,000, select 3,000/3,000, val 3,000/3,000$", lines[-1]), lines
    assert any("training the BPE" in line for line in lines)
    prepare(corpus, tmp_path / "quiet", VOCAB, **BUDGETS, **_quiet())  # no sink, stderr not a terminal
    assert capsys.readouterr().err == ""


def test_status_line_is_throttled(monkeypatch):
    shown = []
    line = StatusLine(shown.append, every=3600)
    for i in range(5):
        line.update(lambda i=i: f"step {i}")
    line.update(lambda: "last", force=True)
    assert shown == ["step 0", "last"]


def test_a_seed_draws_other_documents_while_streaming(corpus, built, tmp_path):
    one = prepare(corpus, tmp_path / "one", VOCAB, **BUDGETS, **_quiet(seed=1))
    shares = one.manifest["corpus"]["shares"]
    assert shares == built.manifest["corpus"]["shares"] and one.manifest["request"]["seed"] == 1
    seen = {name: _markers(one, name) for name in SPLITS}
    for t in _texts("MARK", N_DOCS):  # each document's split is its salted hash against the same thresholds
        marker = t.split("\n", 1)[0]
        for name in SPLITS:
            if marker in seen[name]:
                assert split_of(split_mod.order_key(corpora.document_hash(t), 1), shares) == name
    assert len(_markers(built, "val") & seen["val"]) < len(seen["val"]) / 2
