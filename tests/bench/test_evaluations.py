"""The bench's val evaluations: each run's per-window NLL is computed once, whichever findings ask for it."""

from __future__ import annotations

import numpy as np

from scarce.bench.evaluations import Evaluations
from scarce.ensemble import evaluate_ensemble
from scarce.rundir import Member
from scarce.runs.launch import train
from scarce.runs.store import RunRow
from tests.conftest import make_tiny_config


def _rows(store, tmp_path, seeds):
    rows = []
    for seed in seeds:
        cfg = make_tiny_config(store, **{"model.depth": 1, "train.tokens": 1536, "train.seed": seed,
                                         "train.eval_every": 3})
        run_dir = tmp_path / f"run-{seed}"
        train(cfg, run_dir, results=str(tmp_path / "res"), quiet=True)
        rows.append(RunRow(id=f"run{seed}", status="done", run_dir=str(run_dir), config=cfg.to_dict()))
    return rows


def test_a_run_is_evaluated_once_and_reads_as_evaluated_alone(tiny_store, tmp_path):
    a, b, c = _rows(tiny_store, tmp_path, (1, 2, 3))
    said = []
    (tmp_path / "out").mkdir()
    ev = Evaluations(tmp_path / "out", said.append)
    first = ev.windows([a, b])
    again = ev.windows([b, a, c, a])  # only c is new
    assert said == ["evaluating 2 run(s) on val windows", "evaluating 1 run(s) on val windows"]
    assert np.array_equal(again[[0, 1, 3]], first[[1, 0, 0]])
    alone = evaluate_ensemble([Member.of_run(c.run_dir)], tiny_store.split("val"), tiny_store.token_bytes(),
                              c.config["model"]["seq_len"], c.config["train"]["batch_size"], combine="prob")
    assert np.array_equal(again[2], alone["member_window_nll"][0])
    ev.prefixes([c, b])  # an ensemble's pass stores its members alone too
    assert np.array_equal(ev.windows([c, b]), np.stack([again[2], first[1]]))
    assert len(said) == 3
