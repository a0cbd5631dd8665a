"""Per-window val NLLs of runs and ensembles, cached by the run ids they cover."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from scarce import atomic, rundir
from scarce.bench.common import Log, progress_lines
from scarce.data.store import open_store
from scarce.device import pick_device
from scarce.ensemble import evaluate_ensemble, write_evaluation
from scarce.eval import nextline
from scarce.eval.scoring import Scorer
from scarce.progress import Progress
from scarce.rundir import Member


class Evaluations:
    """Per-window val NLLs of runs and ensembles, cached under OUT/evals by the run ids they cover; on the
    GPU when there is one. `threads`, asked before each evaluation, sets the torch threads of the thread that
    evaluates (`bench --samples`: one while another sample's runs may be training on the cores)."""

    def __init__(self, out: Path, log: Log, threads: Callable[[], int] | None = None):
        self.out, self.log, self.threads = out, log, threads
        self.device = pick_device()

    def _own_threads(self) -> None:
        if self.threads is not None:  # (torch's intra-op threads are set per calling thread)
            torch.set_num_threads(max(1, self.threads()))

    def windows(self, rows: list[dict]) -> np.ndarray:
        """(len(rows), windows) summed val NLL of each run's weights. Cached per run (and val split): a run
        the bench scores in several findings, or as an ensemble's member, is evaluated once; a run that wrote
        them at the evaluation that chose its best weights (`rundir.best_val_windows`) is not evaluated again."""
        store = open_store(rows[0].config.data)
        paths = [self._run_path(r, store) for r in rows]
        for row, path in zip(rows, paths):
            if not path.is_file() and (own := self._own_windows(row, store)) is not None:
                atomic.write_array(path, own)
        missing = list({r.id: r for r, path in zip(rows, paths) if not path.is_file()}.values())
        if missing:
            self._evaluate(missing, "member_window_nll", "prob", store)  # prob: no vocabulary-wide running sum
        return np.stack([np.load(path) for path in paths])

    def prefixes(self, rows: list[dict]) -> np.ndarray:
        """(len(rows), windows): the logit-averaged ensemble of the first k runs, k = 1..len(rows)."""
        return self._evaluate(rows, "prefix_window_nll", "logit", open_store(rows[0].config.data))

    @staticmethod
    def _own_windows(row, store) -> np.ndarray | None:
        seq_len = row.config.model.seq_len
        found = rundir.best_val_windows(row.run_dir, (row.summary or {}).get("best_step", -1),
                                        store.manifest["splits"]["val"]["sha256"], seq_len)
        whole = (len(store.split("val")) - 1) // seq_len
        return found if found is not None and found.shape == (whole,) else None

    def _run_path(self, row, store) -> Path:
        return self.out / "evals" / "runs" / f"{row.id}-{store.manifest['splits']['val']['sha256'][:16]}.npy"

    def _evaluate(self, rows: list[dict], what: str, combine: str, store) -> np.ndarray:
        path = self._pass_path(rows, combine)
        if path.is_file():
            cached = np.load(path)
            if list(cached["ids"]) == [r.id for r in rows]:
                for row, nll in zip(rows, cached["member_window_nll"]):  # (a pass cached before runs were cached
                    if not self._run_path(row, store).is_file():         # one by one)
                        atomic.write_array(self._run_path(row, store), nll)
                return cached[what]
        return self._pass(rows, combine, store, keep=what != "member_window_nll")[what]

    def _pass_path(self, rows: list[dict], combine: str) -> Path:
        key = hashlib.sha256(json.dumps([combine, *[r.id for r in rows]]).encode()).hexdigest()[:16]
        return self.out / "evals" / f"{key}.npz"

    def _pass(self, rows: list[dict], combine: str, store, keep: bool = True,
              message: str | None = None) -> dict:
        """One pass of `rows` over val (`evaluate_ensemble`): each run's windows cached as its own, and with
        `keep` the prefixes' too (for `prefixes`)."""
        members = [Member.of_run(r.run_dir) for r in rows]
        cfg = rows[0].config
        self.log(message or f"evaluating {len(rows)} run(s) on val windows")
        self._own_threads()
        r = evaluate_ensemble(members, store.split("val"), store.token_bytes(), cfg.model.seq_len,
                              cfg.train.batch_size, combine=combine, device=self.device, cache_dir=self.out,
                              progress=progress_lines(self.log))
        for row, nll in zip(rows, r["member_window_nll"]):  # each member alone, whatever the combination
            atomic.write_array(self._run_path(row, store), nll)
        if keep:
            path = self._pass_path(rows, combine)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_arrays(path, ids=np.array([r.id for r in rows]), member_window_nll=r["member_window_nll"],
                                prefix_window_nll=r["prefix_window_nll"], window_tokens=np.array(r["window_tokens"]))
        return r

    def progress(self, what: str, total: int, unit: str) -> Progress:
        """The progress of a phase of many evaluations (downstream scoring) in the bench's log."""
        return Progress(progress_lines(self.log)(), what, total, unit)

    def nextline(self, rows: list[dict], items: list[dict]) -> np.ndarray:
        """(len(items),) bool: whether the logit-averaged ensemble of `rows` (one run: the run) picks each
        item's true line; cached by run ids and the items."""
        ids = [r.id for r in rows]
        key = hashlib.sha256(json.dumps([nextline.TASK, ids, items], sort_keys=True).encode()).hexdigest()[:16]
        path = self.out / "evals" / f"{nextline.TASK}-{key}.npy"
        if path.is_file():
            return np.load(path)
        self._own_threads()
        scorer = Scorer([Member.of_run(r.run_dir) for r in rows], "logit", self.device)
        correct = nextline.correct(scorer, items)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_array(path, correct)
        return correct

    def ensemble(self, rows: list[dict], name: str) -> dict:
        """The ensemble.json of `rows` (every prefix on val), cached under OUT/ensembles/NAME."""
        path = self.out / "ensembles" / name / "ensemble.json"
        ids = [r.id for r in rows]
        if path.is_file():
            cached = json.loads(path.read_text())
            if cached.get("member_ids") == ids:
                return {**cached, "rows": rows}
        # One pass serves both: ensemble.json's losses and the per-window prefixes `prefixes` reads.
        done = self._pass(rows, "logit", open_store(rows[0].config.data),
                          message=f"evaluating the ensemble of {len(rows)} members ({name}) on val, every prefix")
        report = write_evaluation(path.parent, [Member.of_run(row.run_dir) for row in rows],
                                  extra={"member_ids": ids}, device=self.device, result=done)
        return {**report, "rows": rows}
