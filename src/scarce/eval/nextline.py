"""The embedded downstream task, `scarce_nextline`: pick the true next line of Python among 4.

Built from the val split of a token store only (the split a run never trains or selects on), so it
runs offline on the embedded stdlib corpus and every CPU user sees a downstream number. An item is the
last lines (up to CONTEXT_LINES) of a val document before a substantive line (at least MIN_CHARS
characters without indentation), the true line and 3 distractors: substantive lines of *other* val
documents, different from the true line, with the same indentation where there are enough (so the
indentation alone does not give the answer away). The true line's position is drawn uniformly, so
guessing scores 1/4 (the random baseline). Items, distractors and positions are drawn with a seed taken
from the val split's sha256: the same store gives the same items.

What it measures: how well the model predicts plausible code in context, as a choice, not a loss. Its
limits: distractors are real lines from elsewhere, some fit the context almost as well as the true line;
with few val documents the distractor pool is small; and the task shares the corpus the model was
trained on (different documents), so it is in-distribution, unlike the standard tasks.

The lm-eval task definition is `tasks/scarce_nextline.yaml`; `task_config` fills in the generated
JSONL file (lm-eval's local `json` loader, no network).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scarce import atomic
from scarce.data.store import TokenStore

TASK = "scarce_nextline"
CHOICES = 4
RANDOM_BASELINE = 1 / CHOICES
CONTEXT_LINES = 12
MIN_CHARS = 8
MIN_CONTEXT_LINES = 3
MAX_ITEMS = 500
YAML = Path(__file__).parent / "tasks" / f"{TASK}.yaml"


def val_documents(store: TokenStore) -> list[str]:
    """The val split's documents (or held-out windows), decoded, without their end-of-text tokens."""
    tokens = np.asarray(store.split("val"))
    ends = np.flatnonzero(tokens == store.eot_id).tolist()
    tok = store.tokenizer()
    starts = [0] + [e + 1 for e in ends]
    stops = ends + [len(tokens)]
    return [tok.decode(tokens[a:b].tolist()) for a, b in zip(starts, stops) if b > a]


def _candidates(docs: list[str]) -> list[tuple[int, int]]:
    """(document, line) of every line that can be a target: substantive, complete (a newline follows it:
    a held-out window may cut its last line) and after at least MIN_CONTEXT_LINES lines."""
    out = []
    for d, text in enumerate(docs):
        lines = text.split("\n")
        out += [(d, i) for i in range(MIN_CONTEXT_LINES, len(lines) - 1) if len(lines[i].strip()) >= MIN_CHARS]
    return out


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def _distractors(rng: np.random.Generator, true: str, doc: int, pool: list[tuple[int, str]]) -> list[str] | None:
    """CHOICES - 1 distinct lines from other documents, unlike the true line; same indentation first."""
    same = [line for d, line in pool if d != doc and line != true and _indent(line) == _indent(true)]
    other = [line for d, line in pool if d != doc and line != true and _indent(line) != _indent(true)]
    picked: list[str] = []
    for group in (same, other):
        group = list(dict.fromkeys(group))  # distinct, in a fixed order
        for i in rng.permutation(len(group)):
            if len(picked) == CHOICES - 1:
                return picked
            if group[i] not in picked:
                picked.append(group[i])
    return picked if len(picked) == CHOICES - 1 else None


def items(store: TokenStore, max_items: int = MAX_ITEMS) -> list[dict]:
    """The task's items for a store: {id, context, choices, label, doc, line}, deterministic in its val split."""
    docs = val_documents(store)
    lines = [text.split("\n") for text in docs]
    cands = _candidates(docs)
    pool = [(d, lines[d][i]) for d, i in cands]
    rng = np.random.default_rng(int(store.manifest["splits"]["val"]["sha256"][:16], 16))
    chosen = sorted(rng.choice(len(cands), size=min(max_items, len(cands)), replace=False).tolist())
    out = []
    for c in chosen:
        d, i = cands[c]
        true = lines[d][i]
        wrong = _distractors(rng, true, d, pool)
        if wrong is None:
            continue
        label = int(rng.integers(CHOICES))
        context = "\n".join(lines[d][max(0, i - CONTEXT_LINES):i]) + "\n"
        out.append({"id": len(out), "context": context, "choices": wrong[:label] + [true] + wrong[label:],
                    "label": label, "doc": d, "line": i})
    return out


def write_items(store: TokenStore, path: str | Path, max_items: int = MAX_ITEMS) -> int:
    """Write the items as JSONL at `path` (atomically); returns how many."""
    rows = items(store, max_items)
    atomic.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)


def task_config(store: TokenStore, folder: str | Path, max_items: int = MAX_ITEMS) -> dict:
    """The lm-eval task config (the shipped YAML) reading items generated into `folder` from `store`;
    the datasets cache of the local file goes in `folder` too."""
    import yaml  # lm-eval's dependency, present with the eval extra

    folder = Path(folder)
    data = folder / f"{TASK}.jsonl"
    write_items(store, data, max_items)
    cfg = yaml.safe_load(YAML.read_text())
    cfg["dataset_kwargs"] = {**cfg.get("dataset_kwargs", {}), "data_files": {"test": str(data)},
                             "cache_dir": str(folder / "hf-cache")}
    return cfg
