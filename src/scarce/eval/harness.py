"""Downstream evaluation through lm-evaluation-harness (0.4.x), for a run or an ensemble.

`evaluate` runs lm-eval's tasks (by their lm-eval names, the user's own YAMLs from `include`, and the
embedded `scarce_nextline`) on a `Scorer` wrapped as an lm-eval `LM`, with the Hugging Face libraries
offline: a task whose data is not already in the user's cache (or in local files) fails with one line
saying how to provide it, and nothing is ever downloaded. The report holds lm-eval's metrics per task
(value and stderr), the per-item scores (for intervals by resampling items), the centered accuracies
and CORE (`scarce.eval.core`).

lm-eval is an optional extra (`pip install 'scarce[eval]'`), imported only when an evaluation starts.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import io
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

from scarce import atomic
from scarce.data.store import open_store
from scarce.errors import UserError
from scarce.eval import core, nextline
from scarce.eval.scoring import Scorer
from scarce.rundir import Member, read_config

TASKS_DIR = Path(__file__).parent / "tasks"
EMBEDDED = (nextline.TASK,)
OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


class _Requests:
    """lm-eval's three request types answered by a `Scorer`; mixed into lm-eval's `LM` by `lm_class`."""

    def __init__(self, scorer: Scorer) -> None:
        super().__init__()
        self.scorer = scorer

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self.scorer.loglikelihood([(r.args[0], r.args[1]) for r in requests])

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        return self.scorer.loglikelihood_rolling([r.args[0] for r in requests])

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy, whatever the task's sampling settings; stops at `until` or after `max_gen_toks` (256)."""
        contexts, until, max_tokens = [], [], []
        for r in requests:
            context, kwargs = r.args[0], dict(r.args[1] or {})
            stops = kwargs.get("until") or []
            contexts.append(context)
            until.append([stops] if isinstance(stops, str) else list(stops))
            max_tokens.append(int(kwargs.get("max_gen_toks", 256)))
        return self.scorer.generate(contexts, until, max_tokens)

    @property
    def tokenizer_name(self) -> str:
        return f"scarce-bpe-{self.scorer.vocab}"


@functools.cache
def lm_class() -> type:
    """`ScarceLM`, a subclass of lm-eval's `LM` (lm-eval imported on first use)."""
    from lm_eval.api.model import LM

    return type("ScarceLM", (_Requests, LM), {"__module__": __name__,
                                              "__doc__": "A scarce run or ensemble as an lm-eval model."})


def parse_tasks(text: str) -> list[str]:
    """Task names from `a,b,c`, in order, without repeats."""
    names = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not names:
        raise UserError("--tasks names no task (give e.g. --tasks scarce_nextline or --tasks arc_easy,piqa)")
    return names


@contextmanager
def offline() -> Iterator[None]:
    """Hugging Face datasets and hub offline (and quiet) for the duration: env vars for what is imported
    later, the module flags of what is already imported."""
    saved_env = {k: os.environ.get(k) for k in OFFLINE_ENV}
    os.environ.update(OFFLINE_ENV)
    saved = []
    for module, names in (("huggingface_hub.constants", ("HF_HUB_OFFLINE",)),
                          ("datasets.config", ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))):
        mod = sys.modules.get(module)
        for name in names if mod is not None else ():
            if hasattr(mod, name):
                saved.append((mod, name, getattr(mod, name)))
                setattr(mod, name, True)
    quiet = logging.getLogger("lm_eval"), logging.getLogger("lm-eval")
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
        for mod, name, value in saved:
            setattr(mod, name, value)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def _without_provenance(evaluator) -> Iterator[None]:
    """simple_evaluate without its provenance probes (its progress bars go to a buffer too: scarce prints
    its own table, and failures come back as exceptions): the machine's environment (torch's collect_env runs
    pip and nvidia-smi, ~3 s) and the git hash of the working directory (git prints an error outside a
    repository). The report says what was evaluated, with which lm-eval."""
    saved = {name: getattr(evaluator, name) for name in ("add_env_info", "get_git_commit_hash") if hasattr(evaluator, name)}
    evaluator.add_env_info = lambda results: None
    evaluator.get_git_commit_hash = lambda: None
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(evaluator, name, fn)


@functools.cache
def _index(paths: tuple[str, ...], defaults: bool):
    """lm-eval's task index of `paths` (and of its own tasks with `defaults`: ~15k YAMLs, seconds), kept
    for the process."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=defaults, include_path=list(paths))


def _task_manager(names: list[str], include: list[Path]):
    """lm-eval's task index: only TASKS_DIR and `include` when they hold every name (quick), else with
    lm-eval's own tasks. Unknown names are a one-line error."""
    paths = (str(TASKS_DIR), *(str(p.resolve()) for p in include))
    manager = _index(paths, False)
    if any(n not in manager.all_tasks for n in names):
        manager = _index(paths, True)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        close = sorted({c for n in unknown for c in difflib.get_close_matches(n, manager.all_tasks, n=3)})
        hint = f" (close: {', '.join(close)})" if close else ""
        raise UserError(f"unknown task {', '.join(unknown)}: not an lm-eval task name{' nor in --include-path' if include else ''}"
                        f"{hint}; `lm-eval ls tasks` lists them")
    return manager


def check_task_yamls(folder: Path) -> None:
    """A one-line error naming the first task YAML under `folder` that does not parse as a mapping (lm-eval's
    index skips such a file with a log line, and its task would then be "unknown"). lm-eval's own tags
    (`!function utils.process_docs`) are accepted as they are."""
    try:
        import yaml
    except ImportError:  # lm-eval (which needs it) is missing: evaluate says so next
        return

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    for path in sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml")):
        try:
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise UserError(f"--include-path: {path} is not valid YAML{where} ({problem})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"--include-path: cannot read {path} as UTF-8 text ({e})") from None
        if not isinstance(doc, dict):
            raise UserError(f"--include-path: {path} is not a task YAML (a mapping of fields such as task:, "
                            f"dataset_path:, doc_to_text:); it holds {'nothing' if doc is None else 'a ' + type(doc).__name__}")


def _missing_data(names: list[str], e: Exception) -> UserError:
    why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    found = re.search(r"'([\w.-]+/[\w.-]+)'", why)
    dataset = f"'{found.group(1)}'" if found else "PATH"
    return UserError(
        f"task data not available offline: {why} (tasks asked: {', '.join(names)}); scarce eval never downloads: "
        f"fetch it once where there is network (python -c \"import datasets; datasets.load_dataset({dataset}, NAME)\", "
        "NAME the task's dataset_name) so it lands in the Hugging Face cache and run with that cache "
        "(HF_DATASETS_CACHE), or give a task YAML reading local files with --include-path")


def evaluate(members: list[Member], tasks: list[str], combine: str = "logit", include: list[Path] | None = None,
             limit: int | None = None, batch_size: int = 16, device: str = "cpu", block_bytes: int = 1 << 30,
             max_items: int = nextline.MAX_ITEMS) -> dict:
    """Evaluate one run (one member) or the ensemble of `members` on lm-eval `tasks`; returns the report
    ({results, core, centered, items, samples, model, ...})."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1 (items per task), got {limit}")
    include = [Path(p) for p in include or []]
    for p in include:
        if not p.is_dir():
            raise UserError(f"--include-path {p} is not a folder of task YAMLs")
        check_task_yamls(p)
    scorer = Scorer(members, combine, device, batch_size, block_bytes)
    start = time.time()
    with offline(), tempfile.TemporaryDirectory(prefix="scarce-eval-") as tmp:
        try:
            import lm_eval
            import lm_eval.evaluator
        except ImportError:
            raise UserError("downstream evaluation needs lm-evaluation-harness: pip install 'scarce[eval]'") from None
        named = [t for t in tasks if t not in EMBEDDED]
        manager = _task_manager(named, include)
        store = open_store(read_config(members[0].run_dir).data)
        specs = [nextline.task_config(store, tmp, max_items) if t == nextline.TASK else t for t in tasks]
        try:
            with _without_provenance(lm_eval.evaluator), redirect_stderr(io.StringIO()):
                raw = lm_eval.simple_evaluate(model=lm_class()(scorer), tasks=specs, task_manager=manager,
                                              limit=limit, bootstrap_iters=1000, log_samples=True)
        except (ConnectionError, FileNotFoundError) as e:
            raise _missing_data(named or tasks, e) from None
    results = {task: _metrics(m) for task, m in raw["results"].items()}
    return {
        "results": results,
        "core": core.core(results),
        "centered": {t: c["centered"] for t, c in core.centered_accuracies(results).items()},
        "items": {task: _items(samples) for task, samples in raw.get("samples", {}).items()},
        "samples": {t: n.get("effective") for t, n in raw.get("n-samples", {}).items()},
        "tasks": tasks, "limit": limit, "lm_eval": lm_eval.__version__, "seconds": round(time.time() - start, 1),
        "model": {"members": [{"run_dir": str(m.run_dir), "weights": str(m.weights)} for m in members],
                  "combine": combine if len(members) > 1 else None, "seq_len": scorer.seq_len,
                  "data": str(store.path), "device": str(device)},
    }


def _metrics(raw: dict) -> dict:
    """lm-eval's `metric,filter` keys as `metric` (filter `none`) or `metric,filter`; stderr as metric_stderr."""
    out = {}
    for key, value in raw.items():
        if key in ("alias", "sample_len") or not isinstance(value, (int, float)):
            continue
        name, _, filt = key.partition(",")
        out[name if filt in ("", "none") else f"{name},{filt}"] = value
    return out


def _items(samples: list[dict]) -> dict[str, list[float]]:
    """Per-item scores of each metric lm-eval logged per document, in document order."""
    rows = sorted(samples, key=lambda s: s.get("doc_id", 0))
    keys = [k for k, v in (rows[0].items() if rows else ()) if k not in ("doc_id", "target")
            and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: [float(r[k]) for r in rows] for k in keys}


def record_path(folder: str | Path, tasks: list[str], limit: int | None = None) -> Path:
    """Where a run's (or ensemble's) evaluation is kept: FOLDER/evals/<tasks>[.limitN].json."""
    name = "+".join(tasks)
    if len(name) > 100:
        name = f"{'+'.join(tasks[:3])}+{len(tasks) - 3}more-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return Path(folder) / "evals" / f"{name}{f'.limit{limit}' if limit else ''}.json"


def write_report(report: dict, path: str | Path) -> None:
    atomic.write_json(path, report)


def table(report: dict) -> str:
    """The report as text: one line per task and metric (value, stderr, centered accuracy), then CORE."""
    lines = [f"{'task':<28} {'metric':<14} {'value':>8} {'stderr':>8} {'centered':>9}"]
    for task, metrics in report["results"].items():
        shown = [m for m in metrics if not m.endswith("_stderr")]
        for i, m in enumerate(shown):
            err = metrics.get(f"{m}_stderr")
            c = report["centered"].get(task) if m == core.accuracy_metric(metrics) else None
            lines.append(f"{task if i == 0 else '':<28} {m:<14} {metrics[m]:>8.4f} "
                         f"{'' if err is None else f'{err:.4f}':>8} {'' if c is None else f'{c:.4f}':>9}")
    lines.append(core.describe(report["core"]))
    return "\n".join(lines)
