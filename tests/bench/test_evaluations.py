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


def test_a_run_that_wrote_its_windows_is_not_evaluated_again(tiny_store, tmp_path):
    import json

    rows = _rows(tiny_store, tmp_path, (4, 5))
    for row in rows:
        row.summary = json.loads((tmp_path / f"run-{row.config['train']['seed']}" / "summary.json").read_text())
    said = []
    (tmp_path / "out").mkdir()
    got = Evaluations(tmp_path / "out", said.append).windows(rows)
    assert said == []  # both read from what the runs wrote beside their best weights
    cfg = rows[0].config
    alone = evaluate_ensemble([Member.of_run(r.run_dir) for r in rows], tiny_store.split("val"),
                              tiny_store.token_bytes(), cfg["model"]["seq_len"], cfg["train"]["batch_size"],
                              combine="prob")
    np.testing.assert_allclose(got, alone["member_window_nll"], rtol=1e-9)
    assert abs(got[0].sum() / got.shape[1] / cfg["model"]["seq_len"] - rows[0].summary["val_loss"]) < 1e-9

    rows[1].summary["best_step"] += 1  # windows of another step than the best weights': evaluated
    (tmp_path / "out2").mkdir()
    Evaluations(tmp_path / "out2", said.append).windows(rows)
    assert said == ["evaluating 1 run(s) on val windows"]


def test_an_out_folder_with_only_ensemble_caches_still_reads_runs(tiny_store, tmp_path):
    """OUT/evals from a bench that cached passes over several runs but not each run alone: the runs are read
    from that pass's cache and written one by one."""
    rows = _rows(tiny_store, tmp_path, (6, 7))
    (tmp_path / "out").mkdir()
    ev = Evaluations(tmp_path / "out", lambda *a: None)
    first = ev.windows(rows)
    for f in (tmp_path / "out" / "evals" / "runs").iterdir():
        f.unlink()
    assert np.array_equal(ev.windows(rows), first)
