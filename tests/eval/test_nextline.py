"""The embedded task: deterministic items from the val split only, 4 choices, random baseline 1/4."""

from __future__ import annotations

import json

from scarce.data.store import open_store
from scarce.eval import nextline


def test_items_are_deterministic_and_come_from_val_only(tiny_store, tmp_path, monkeypatch):
    store = open_store(tiny_store.path)
    asked = []
    real = type(store).split
    monkeypatch.setattr(type(store), "split", lambda self, name: asked.append(name) or real(self, name))
    items = nextline.items(store)
    assert set(asked) == {"val"}
    assert items == nextline.items(open_store(tiny_store.path))
    assert len(items) >= 10
    docs = nextline.val_documents(store)
    val_lines = {line for d in docs for line in d.split("\n")}
    same_doc = 0
    for it in items:
        doc = docs[it["doc"]]
        true = it["choices"][it["label"]]
        assert doc.split("\n")[it["line"]] == true and (it["context"] + true) in doc
        assert len(it["choices"]) == nextline.CHOICES == len(set(it["choices"]))
        assert all(c in val_lines for c in it["choices"])  # distractors: lines of the same split
        wrong = [c for i, c in enumerate(it["choices"]) if i != it["label"]]
        assert not set(wrong) & set(it["context"].split("\n"))
        same_doc += sum(c in doc.split("\n") for c in wrong)
    assert same_doc > 0  # some distractors come from the item's own document (these documents are short)
    assert nextline.RANDOM_BASELINE == 0.25


def test_written_items_and_task_config(tiny_store, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    n = nextline.write_items(tiny_store, a)
    nextline.write_items(open_store(tiny_store.path), b)
    assert a.read_bytes() == b.read_bytes() and len(a.read_text().splitlines()) == n
    assert json.loads(a.read_text().splitlines()[0])["id"] == 0
    cfg = nextline.task_config(tiny_store, tmp_path / "task")
    assert cfg["task"] == nextline.TASK and cfg["output_type"] == "multiple_choice"
    assert cfg["dataset_path"] == "json" and cfg["target_delimiter"] == ""
    assert (tmp_path / "task" / f"{nextline.TASK}.jsonl").is_file()
    assert cfg["dataset_kwargs"]["data_files"]["test"] == str(tmp_path / "task" / f"{nextline.TASK}.jsonl")


def test_distractors_come_from_the_same_document_first_then_closest_in_indent_and_length():
    import numpy as np

    true = "    return self.value"
    pool = [(0, f"    x{i} = compute(a, b, c)") for i in range(nextline.NEAREST)] + [(0, true), (0, "    y = 1")]
    pool += [(1, "    return self.other")] * 3 + [(2, "        return self.value + 1")]
    for seed in range(5):
        wrong = nextline._distractors(np.random.default_rng(seed), true, 0, "    y = 1\n", pool)
        assert len(wrong) == 3 and all(w.startswith("    x") for w in wrong)
    assert nextline._distractors(np.random.default_rng(0), true, 3, "", pool[-4:]) is None  # 2 distinct lines
