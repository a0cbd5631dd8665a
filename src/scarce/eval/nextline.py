"""The embedded downstream task, `scarce_nextline`: pick the true next line of Python among 4.

Built from the val split of a token store only (the split a run never trains or selects on), so it
runs offline on the embedded stdlib corpus and every CPU user sees a downstream number. An item is the
last lines (up to CONTEXT_LINES) of a val document before a substantive line (at least MIN_CHARS
characters besides indentation), that true line, and 3 distractors: other substantive val lines, not in
the context, drawn among the NEAREST closest to the true line: from the same document first (else a model
could win by telling documents apart rather than by reading the context), then in indentation, then in
length (a weak model prefers short lines and familiar indentation). The true line's position is drawn
uniformly, so guessing scores 1/4 (the random baseline). Items, distractors and positions are drawn with
a seed taken from the val split's sha256: the same store gives the same items.

What it measures: whether the model uses the context to tell the line that comes next from other lines
of the same file, as a choice rather than a loss. Its limits: some distractors fit the context almost as
well as the true line; few val documents give few, correlated items; and the task is in-distribution
(the training corpus's kind of text, other documents), unlike the standard tasks.

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
NEAREST = 12
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


def _distractors(rng: np.random.Generator, true: str, doc: int, context: str,
                 pool: list[tuple[int, str]]) -> list[str] | None:
    """CHOICES - 1 distinct lines, unlike the true line and absent from the context, drawn among the NEAREST
    closest to it: from the same document first (so a document's style does not give the answer away),
    then in indentation, then in length (a weak model prefers short lines and familiar indentation)."""
    seen = set(context.split("\n")) | {true}
    others = list(dict.fromkeys((d != doc, line) for d, line in pool if line not in seen))
    others.sort(key=lambda o: (o[0], _indent(o[1]) != _indent(true), abs(len(o[1]) - len(true))))  # stable
    nearest = list(dict.fromkeys(line for _, line in others))[:NEAREST]
    if len(nearest) < CHOICES - 1:
        return None
    return [nearest[i] for i in rng.choice(len(nearest), CHOICES - 1, replace=False)]


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
        context = "\n".join(lines[d][max(0, i - CONTEXT_LINES):i]) + "\n"
        wrong = _distractors(rng, true, d, context, pool)
        if wrong is None:
            continue
        label = int(rng.integers(CHOICES))
        out.append({"id": len(out), "context": context, "choices": wrong[:label] + [true] + wrong[label:],
                    "label": label, "doc": d, "line": i})
    return out


def correct(scorer, items: list[dict]) -> np.ndarray:
    """(len(items),) bool: whether the choice with the highest log-likelihood after the context (lm-eval's
    `acc` for this task) is the true line. `scorer` is a `scarce.eval.scoring.Scorer`."""
    pairs = [(it["context"], choice) for it in items for choice in it["choices"]]
    logliks = np.array([ll for ll, _ in scorer.loglikelihood(pairs)]).reshape(len(items), CHOICES)
    return logliks.argmax(axis=1) == np.array([it["label"] for it in items])


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
