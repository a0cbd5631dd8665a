"""The token store: determinism, disjoint splits, exact budgets, atomic writes, validation, nesting."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from scarce.data import prepare as prepare_mod
from scarce.data import split as split_mod
from scarce.data import store as store_mod
from scarce.data.prepare import derive_store, prepare
from scarce.data.store import SPLITS, open_store
from scarce.data.tokenizer import EOT, existing_tokenizer, load_tokenizer
from scarce.errors import UserError

VOCAB = 320
BUDGETS = {"train_tokens": 60_000, "select_tokens": 8_000, "val_tokens": 8_000}
N_DOCS = 160  # the stdlib has ~170 top-level modules
MARK = re.compile(r"MARK(\d{4})X")


def _sources(n: int) -> list[str]:
    """Real text (the first stdlib modules, cut to 1.5 kB) so BPE has something to learn."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))[:n]
    return [p.read_text(encoding="utf-8", errors="replace")[:1500] for p in files]


def _write_corpus(folder: Path, texts: list[str]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"text": t}) for t in texts]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f"files:{folder}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """~300 kB of documents, each starting with a unique marker MARKnnnnX."""
    texts = [f"MARK{i:04d}X\n{t}" for i, t in enumerate(_sources(N_DOCS))]
    return _write_corpus(tmp_path_factory.mktemp("corpus"), texts)


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    return prepare(corpus, tmp_path_factory.mktemp("stores") / "base", VOCAB, **BUDGETS, log=lambda _: None)


def _shas(store) -> dict:
    m = store.manifest
    return {"tokenizer": m["tokenizer"]["sha256"], **{n: m["splits"][n]["sha256"] for n in SPLITS}}


def _markers(store, name: str) -> list[str]:
    return MARK.findall(store.tokenizer().decode(store.split(name)))


def test_budgets_exact_and_manifest(built):
    m = built.manifest
    for name in SPLITS:
        assert len(built.split(name)) == BUDGETS[f"{name}_tokens"] == m["splits"][name]["tokens"] == built.split_tokens(name)
    assert built.dtype == np.uint16 and built.split("train").dtype == np.uint16
    assert m["tokenizer"]["kind"] == "bpe" and built.vocab_size == VOCAB
    assert m["request"]["vocab_size"] == VOCAB and m["request"]["train_tokens"] == BUDGETS["train_tokens"]
    assert m["corpus"]["documents"] == N_DOCS and len(m["corpus"]["fingerprint"]) == 64
    assert len(built.fingerprint) == 16
    built.verify()


def test_splits_are_disjoint_by_document(built):
    found = {name: _markers(built, name) for name in SPLITS}
    for name, marks in found.items():
        assert len(marks) == len(set(marks)), f"a document appears twice in {name}"
        assert len(marks) >= built.manifest["splits"][name]["documents"] - 1  # the cut one may lose its marker
    assert not set(found["val"]) & set(found["select"])
    assert not set(found["val"]) & set(found["train"])
    assert not set(found["select"]) & set(found["train"])


def test_documents_end_with_eot_and_bytes_add_up(built):
    tok = built.tokenizer()
    for name in SPLITS:
        tokens = np.asarray(built.split(name))
        text_bytes = len(tok.decode(tokens[tokens != built.eot_id]).encode("utf-8"))
        # A cut can split a multi-byte character, which decodes to U+FFFD; the corpus here is ASCII.
        assert built.split_bytes(name) == text_bytes
        eots = int((tokens == built.eot_id).sum())
        assert built.manifest["splits"][name]["documents"] in (eots, eots + 1)


def test_tokenizer_never_sees_val_or_select(corpus, tmp_path, monkeypatch):
    seen: list[str] = []
    train_bpe = split_mod.train_bpe

    def spy(docs, vocab_size):
        seen.extend(docs)
        return train_bpe(docs, vocab_size)

    monkeypatch.setattr(split_mod, "train_bpe", spy)
    store = prepare(corpus, tmp_path / "s", VOCAB, **BUDGETS, log=lambda _: None)
    trained_on = set(MARK.findall("".join(seen)))
    assert trained_on and not trained_on & set(_markers(store, "val") + _markers(store, "select"))


def test_deterministic_and_independent_of_corpus_order(built, tmp_path):
    texts = [f"MARK{i:04d}X\n{t}" for i, t in enumerate(_sources(N_DOCS))]
    shuffled = _write_corpus(tmp_path / "shuffled", texts[::-1])
    again = prepare(shuffled, tmp_path / "again", VOCAB, **BUDGETS, log=lambda _: None)
    assert _shas(again) == _shas(built) and again.fingerprint == built.fingerprint
    assert again.manifest["corpus"]["fingerprint"] == built.manifest["corpus"]["fingerprint"]


def test_heldout_grows_when_val_select_do_not_fit(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(split_mod, "HELDOUT_BYTES_PER_TOKEN", 0.5)  # a far too small first guess
    calls = []
    train_bpe = split_mod.train_bpe
    monkeypatch.setattr(split_mod, "train_bpe", lambda docs, v: calls.append(len(docs)) or train_bpe(docs, v))
    store = prepare(corpus, tmp_path / "s", VOCAB, **BUDGETS, log=lambda _: None)
    assert len(calls) >= 2 and calls == sorted(calls, reverse=True)  # retrained on fewer documents
    assert [len(store.split(n)) for n in SPLITS] == [BUDGETS[f"{n}_tokens"] for n in SPLITS]
    assert store.manifest["tokenizer"]["heldout"]["documents"] >= store.manifest["splits"]["val"]["documents"]


def test_duplicates_are_dropped(tmp_path):
    texts = _sources(40)
    store = prepare(_write_corpus(tmp_path / "c", texts + texts[:5]), tmp_path / "s", 300,
                    train_tokens=2000, select_tokens=500, val_tokens=500, log=lambda _: None)
    assert store.manifest["corpus"]["duplicates_dropped"] == 5


def test_too_many_tokens_says_what_the_corpus_holds(corpus, built, tmp_path):
    out = tmp_path / "s"
    with pytest.raises(UserError, match=r"the corpus holds [\d,]+ tokens .* lower the train budget to at most") as e:
        prepare(corpus, out, VOCAB, 10**8, 8_000, 8_000, log=lambda _: None)
    held = int(re.search(r"holds ([\d,]+) tokens", str(e.value)).group(1).replace(",", ""))
    assert held > sum(BUDGETS.values())
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written
    with pytest.raises(UserError, match="val \\+ select ask for"):
        prepare(corpus, out, VOCAB, 1000, held * 2 // 5, held * 2 // 5, log=lambda _: None)  # > 3/4 of the corpus
    assert not out.exists()


@pytest.mark.parametrize("field, value", [("train_tokens", 0), ("select_tokens", -5), ("val_tokens", 1.5),
                                          ("vocab_size", 100)])
def test_bad_budgets(corpus, tmp_path, field, value):
    kwargs = {"vocab_size": VOCAB, **BUDGETS, field: value}
    with pytest.raises(UserError, match="vocabulary size must be|positive integer"):
        prepare(corpus, tmp_path / "s", log=lambda _: None, **kwargs)
    assert not (tmp_path / "s").exists()


def test_empty_and_tiny_corpora(tmp_path):
    with pytest.raises(UserError, match="no non-empty documents"):
        prepare(_write_corpus(tmp_path / "empty", ["", " \n"]), tmp_path / "s", VOCAB, 10, 10, 10)
    with pytest.raises(UserError, match="at least 3"):
        prepare(_write_corpus(tmp_path / "two", ["a b c", "d e f"]), tmp_path / "s", VOCAB, 1, 1, 1)
    assert not (tmp_path / "s").exists()


def test_failed_write_leaves_nothing(corpus, tmp_path, monkeypatch):
    def boom(folder, tok, arrays):
        (folder / "train.bin").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(prepare_mod, "_write_files", boom)
    with pytest.raises(UserError, match="disk full"):
        prepare(corpus, tmp_path / "s", VOCAB, **BUDGETS, log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_reuse_and_conflicts(corpus, built, tmp_path):
    messages: list[str] = []
    again = prepare(corpus, built.path, VOCAB, **BUDGETS, log=messages.append)
    assert "reusing" in messages[0] and again.fingerprint == built.fingerprint
    with pytest.raises(UserError, match="different request.*another folder"):
        prepare(corpus, built.path, VOCAB, **{**BUDGETS, "train_tokens": 50_000}, log=lambda _: None)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a complete token store"):
        prepare(corpus, other, VOCAB, **BUDGETS, log=lambda _: None)
    assert (other / "notes.txt").read_text() == "mine"


def test_empty_out_folder_is_used(corpus, tmp_path):
    (tmp_path / "s").mkdir()
    store = prepare(corpus, tmp_path / "s", VOCAB, train_tokens=1000, select_tokens=100, val_tokens=100,
                    log=lambda _: None)
    assert len(store.split("train")) == 1000


def _damaged_copy(built, tmp_path) -> Path:
    path = tmp_path / "copy"
    shutil.copytree(built.path, path)
    return path


def test_open_rejects_missing_and_corrupt_stores(built, tmp_path):
    with pytest.raises(UserError, match="no token store at"):
        open_store(tmp_path / "nowhere")
    path = _damaged_copy(built, tmp_path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="damaged or not a scarce manifest"):
        open_store(path)
    manifest = dict(built.manifest, splits={"train": {"tokens": 5}})
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="damaged or not a scarce manifest"):
        open_store(path)
    (path / "manifest.json").unlink()
    with pytest.raises(UserError, match="not a token store"):
        open_store(path)


def test_open_rejects_wrong_size_or_missing_bin(built, tmp_path):
    path = _damaged_copy(built, tmp_path)
    with open(path / "val.bin", "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(UserError, match="val.bin holds .* manifest says"):
        open_store(path)
    (path / "val.bin").unlink()
    with pytest.raises(UserError, match="lacks val.bin"):
        open_store(path)


def test_verify_catches_changed_tokens(built, tmp_path):
    path = _damaged_copy(built, tmp_path)
    data = bytearray((path / "select.bin").read_bytes())
    data[10] ^= 1
    (path / "select.bin").write_bytes(bytes(data))
    store = open_store(path)  # same size: only the hash notices
    with pytest.raises(UserError, match="select.bin does not match"):
        store.verify()


def test_check_hashes_once_then_trusts_the_cache_until_the_file_changes(built, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = _damaged_copy(built, tmp_path)
    hashed = []
    real = store_mod.sha256_file
    monkeypatch.setattr(store_mod, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    open_store(path).check()
    assert sorted(hashed) == sorted(["tokenizer.json", "train.bin", "select.bin", "val.bin"])
    hashed.clear()
    open_store(path).check()  # a second open: nothing rehashed
    assert hashed == []
    data = bytearray((path / "select.bin").read_bytes())
    data[10] ^= 1  # same size, new mtime: the cache entry no longer holds
    (path / "select.bin").write_bytes(bytes(data))
    with pytest.raises(UserError, match="select.bin does not match its sha256"):
        open_store(path).check()
    assert hashed == ["select.bin"]


def test_check_refuses_ids_beyond_an_edited_vocabulary(built, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = _damaged_copy(built, tmp_path)
    open_store(path).check()  # cached as good at the true vocabulary size...
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["tokenizer"]["vocab_size"] = 3  # ...which the cache key holds: a smaller one checks again
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="beyond the vocabulary of 3"):
        open_store(path).check()


def test_split_is_read_only_and_names_checked(built):
    with pytest.raises(ValueError):
        built.split("train")[0] = 1
    with pytest.raises(UserError, match="unknown split"):
        built.split("test")
    with pytest.raises(UserError, match="unknown split"):
        built.split_tokens("test")


def test_derived_stores_are_nested(corpus, built, tmp_path):
    half = derive_store(built, tmp_path / "half", 30_000, log=lambda _: None)
    quarter = derive_store(half.path, tmp_path / "quarter", 15_000, log=lambda _: None)
    for small in (half, quarter):
        for name in ("select", "val"):
            assert small.manifest["splits"][name] == built.manifest["splits"][name]
        assert small.manifest["tokenizer"] == built.manifest["tokenizer"]
        n = len(small.split("train"))
        assert np.array_equal(small.split("train"), built.split("train")[:n])
    # A derived store is exactly what prepare makes with that train budget.
    direct = prepare(corpus, tmp_path / "direct", VOCAB, **{**BUDGETS, "train_tokens": 30_000}, log=lambda _: None)
    assert _shas(direct) == _shas(half) and direct.manifest["splits"] == half.manifest["splits"]
    messages: list[str] = []
    derive_store(built, tmp_path / "half", 30_000, log=messages.append)
    assert "reusing" in messages[0]
    with pytest.raises(UserError, match="has 60,000 train tokens"):
        derive_store(built, tmp_path / "big", 70_000)
    with pytest.raises(UserError, match="already holds"):
        derive_store(built, tmp_path / "half", 20_000)


def test_stdlib_store_with_small_budgets(tmp_path):
    store = prepare("stdlib", tmp_path / "s", 300, train_tokens=20_000, select_tokens=5_000, val_tokens=5_000,
                    tokenizer_bytes=1_000_000, log=lambda _: None)
    assert store.manifest["corpus"]["documents"] > 1000
    assert [len(store.split(n)) for n in SPLITS] == [20_000, 5_000, 5_000]


def test_tokenizer_roundtrip_and_token_bytes(built, tmp_path):
    tok = built.tokenizer()
    text = f"def f(x):\n    return x  # caf\u00e9 {EOT}\n"
    ids = tok.encode(text)
    assert tok.decode(ids) == text and built.eot_id not in ids  # EOT in text stays text
    tb = built.token_bytes()
    assert tb.shape == (built.vocab_size,) and tb.dtype == np.int32
    assert tb[built.eot_id] == 0 and (np.delete(tb, built.eot_id) >= 1).all()
    assert int(tb[ids].sum()) == len(text.encode("utf-8"))
    tok.save(tmp_path / "tok.json")
    assert load_tokenizer(tmp_path / "tok.json").encode_batch([text, "x"]) == tok.encode_batch([text, "x"])


def test_big_vocab_uses_uint32():
    class Big:
        vocab_size, eot_id = 70_000, 0

    assert split_mod._Encoded(Big(), ["a"]).dtype == np.dtype("<u4")


@pytest.mark.skipif(importlib.util.find_spec("tiktoken") is not None, reason="tiktoken installed")
def test_gpt2_without_tiktoken_is_a_user_error():
    with pytest.raises(UserError, match="tiktoken"):
        existing_tokenizer("gpt2")


def test_near_duplicates_are_dropped_before_splitting(tmp_path):
    """Near-copies (a generated table with one line changed) would sit in train and in select or val."""
    table = "\n".join(f"    0x{i:04x}: 'character number {i} of the table'," for i in range(200))
    docs = [f"# codec {k}\n{table}\nname = 'codec-{k}'\n" for k in range(5)]
    docs += [f"def function_number_{k}(argument):\n    return argument * {k} + {k * k}  # unique\n" * 3
             for k in range(400)]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in docs) + "\n")
    kwargs = dict(vocab_size=300, train_tokens=500, select_tokens=100, val_tokens=100, log=lambda *a: None)
    plain = prepare(f"files:{tmp_path / 'c.jsonl'}", tmp_path / "plain", **kwargs)
    deduped = prepare(f"files:{tmp_path / 'c.jsonl'}", tmp_path / "dedup", near_duplicates=0.5, **kwargs)
    assert plain.manifest["corpus"]["documents"] == 405 and deduped.manifest["corpus"]["documents"] == 401


def test_heldout_window_spreads_select_and_val_over_documents(corpus, tmp_path):
    whole = prepare(corpus, tmp_path / "whole", VOCAB, **BUDGETS, log=lambda _: None)
    windowed = prepare(corpus, tmp_path / "win", VOCAB, **BUDGETS, log=lambda _: None, heldout_window=400)
    for split in ("select", "val"):
        assert windowed.manifest["splits"][split]["documents"] > 2 * whole.manifest["splits"][split]["documents"]
        assert len(windowed.split(split)) == len(whole.split(split))
    again = prepare(corpus, tmp_path / "win2", VOCAB, **BUDGETS, log=lambda _: None, heldout_window=400)
    assert np.array_equal(again.split("val"), windowed.split("val"))  # the windows are fixed by the documents


def test_a_held_out_shortfall_counts_windows_not_whole_documents(tmp_path):
    """With held-out windows a document gives select at most one window: the error says what is left in
    windows (it used to count whole documents, naming a budget that could not fit)."""
    texts = [t * 4 for t in _sources(40)]
    corpus = _write_corpus(tmp_path / "c", texts)
    with pytest.raises(UserError, match=r"remain for select after val \(64-token windows, one per document\)") as e:
        prepare(corpus, tmp_path / "s", 300, train_tokens=1000, select_tokens=1500, val_tokens=1500,
                tokenizer="bpe", heldout_window=64, log=lambda _: None)
    left = int(re.search(r"; ([\d,]+) remain", str(e.value)).group(1).replace(",", ""))
    assert left < 1500 and left <= 65 * 40


def test_a_seed_draws_another_sample_of_the_same_corpus(corpus, built, tmp_path):
    one = prepare(corpus, tmp_path / "one", VOCAB, **BUDGETS, seed=1, log=lambda _: None)
    again = prepare(corpus, tmp_path / "again", VOCAB, **BUDGETS, seed=np.int64(1), log=lambda _: None)
    two = prepare(corpus, tmp_path / "two", VOCAB, **BUDGETS, seed=2, log=lambda _: None)
    assert _shas(one) == _shas(again) and one.manifest["request"]["seed"] == 1
    assert built.manifest["request"]["seed"] == 0
    # the same corpus, other documents in val, select and train; each store's splits still disjoint
    assert one.manifest["corpus"]["fingerprint"] == built.manifest["corpus"]["fingerprint"]
    for store in (one, two):
        found = {name: set(_markers(store, name)) for name in SPLITS}
        assert not found["val"] & found["select"] and not (found["val"] | found["select"]) & found["train"]
    vals = [set(_markers(s, "val")) for s in (built, one, two)]
    assert all(len(a & b) < len(a) / 2 for i, a in enumerate(vals) for b in vals[i + 1:])
    assert one.fingerprint not in (built.fingerprint, two.fingerprint)
    # the order is the documents' hashes salted by the seed: which documents come first, not what is in them
    texts = _sources(N_DOCS)
    order = sorted(range(N_DOCS), key=lambda i: split_mod.order_key(
        split_mod.corpora.document_hash(f"MARK{i:04d}X\n{texts[i]}"), 1))
    assert _markers(one, "val")[0] == f"{order[0]:04d}"
    with pytest.raises(UserError, match="different request"):
        prepare(corpus, one.path, VOCAB, **BUDGETS, seed=2, log=lambda _: None)
    for bad in (-1, 1.5, True, 2**63):
        with pytest.raises(UserError, match=r"seed must be an integer in \[0, 2\^63\)"):
            prepare(corpus, tmp_path / "bad", VOCAB, **BUDGETS, seed=bad, log=lambda _: None)
    assert not (tmp_path / "bad").exists()


def test_held_out_share_grows_past_half_only_when_val_and_select_need_it(corpus, built, tmp_path):
    """Half the corpus is held out from tokenizer training at most, unless val + select need more (another
    sample of a corpus can give fewer tokens): then 5/8, then 3/4. A store that fits in half keeps its splits."""
    lines = (Path(corpus.removeprefix("files:")) / "docs.jsonl").read_text().splitlines()
    total = sum(len(json.loads(line)["text"].encode()) for line in lines if line)
    assert built.manifest["tokenizer"]["heldout"]["bytes"] <= total / 2
    again = prepare(corpus, tmp_path / "again", VOCAB, **BUDGETS, log=lambda _: None)
    assert _shas(again) == _shas(built)
    big = prepare(corpus, tmp_path / "big", VOCAB, 2000, 45_000, 45_000, log=lambda _: None)  # > half: grew
    held = big.manifest["tokenizer"]["heldout"]["bytes"]
    assert total / 2 < held <= total * 3 / 4
    assert big.manifest["splits"]["val"]["tokens"] == 45_000 and big.manifest["splits"]["train"]["tokens"] == 2000
