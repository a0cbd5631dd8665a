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
                              c.config.model.seq_len, c.config.train.batch_size, combine="prob")
    assert np.array_equal(again[2], alone["member_window_nll"][0])
    ev.prefixes([c, b])  # an ensemble's pass stores its members alone too
    assert np.array_equal(ev.windows([c, b]), np.stack([again[2], first[1]]))
    assert len(said) == 3


def test_a_run_that_wrote_its_windows_is_not_evaluated_again(tiny_store, tmp_path):
    import json

    rows = _rows(tiny_store, tmp_path, (4, 5))
    for row in rows:
        row.summary = json.loads((tmp_path / f"run-{row.config.train.seed}" / "summary.json").read_text())
    said = []
    (tmp_path / "out").mkdir()
    got = Evaluations(tmp_path / "out", said.append).windows(rows)
    assert said == []  # both read from what the runs wrote beside their best weights
    cfg = rows[0].config
    alone = evaluate_ensemble([Member.of_run(r.run_dir) for r in rows], tiny_store.split("val"),
                              tiny_store.token_bytes(), cfg.model.seq_len, cfg.train.batch_size,
                              combine="prob")
    np.testing.assert_allclose(got, alone["member_window_nll"], rtol=1e-9)
    assert abs(got[0].sum() / got.shape[1] / cfg.model.seq_len - rows[0].summary["val_loss"]) < 1e-9

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


def test_an_ensemble_and_its_prefixes_are_one_pass(tiny_store, tmp_path):
    """ensemble.json's losses and the per-window prefixes come from one pass over the members, and read as the
    ensemble evaluated on its own (`write_evaluation`) and as a separate pass (`evaluate_ensemble`)."""
    import json

    from scarce.ensemble import write_evaluation

    rows = _rows(tiny_store, tmp_path, (8, 9))
    said = []
    (tmp_path / "out").mkdir()
    ev = Evaluations(tmp_path / "out", said.append)
    report = ev.ensemble(rows, "d1")
    prefixes = ev.prefixes(rows)
    members = ev.windows(rows)
    assert said == ["evaluating the ensemble of 2 members (d1) on val, every prefix"]
    alone = write_evaluation(tmp_path / "alone", [Member.of_run(r.run_dir) for r in rows])
    for key in ("prefix_val_loss", "prefix_val_bpb", "tokens"):
        np.testing.assert_allclose(report[key], alone[key], rtol=1e-12)
    written = json.loads((tmp_path / "out" / "ensembles" / "d1" / "ensemble.json").read_text())
    assert written["member_ids"] == [r.id for r in rows] and written["prefix_val_loss"] == report["prefix_val_loss"]
    cfg = rows[0].config
    separate = evaluate_ensemble([Member.of_run(r.run_dir) for r in rows], tiny_store.split("val"),
                                 tiny_store.token_bytes(), cfg.model.seq_len, cfg.train.batch_size)
    np.testing.assert_allclose(prefixes, separate["prefix_window_nll"], rtol=1e-12)
    np.testing.assert_allclose(members, separate["member_window_nll"], rtol=1e-12)
    assert ev.ensemble(rows, "d1")["prefix_val_loss"] == report["prefix_val_loss"] and len(said) == 1


def test_a_precomputed_evaluation_of_another_combination_is_refused(tiny_store, tmp_path):
    import pytest

    from scarce.ensemble import write_evaluation

    rows = _rows(tiny_store, tmp_path, (10,))
    members = [Member.of_run(rows[0].run_dir)]
    cfg = rows[0].config
    done = evaluate_ensemble(members, tiny_store.split("val"), tiny_store.token_bytes(), cfg.model.seq_len,
                             combine="prob")
    with pytest.raises(ValueError, match="combined by prob"):
        write_evaluation(tmp_path / "e", members, combine="logit", result=done)


def test_evaluations_set_the_torch_threads_of_the_thread_that_evaluates(tiny_store, tmp_path):
    """`bench --samples`: a sample's own evaluations take one thread while another sample runs, every core once
    it is the last; torch's threads are set in the evaluating thread (they do not carry across threads)."""
    import threading

    import torch

    from scarce.bench.samples import Live

    rows = _rows(tiny_store, tmp_path, (11,))
    live = Live(2, cores=2)
    asked, seen = [], []

    def threads():
        asked.append(live.threads())
        return asked[-1]

    def evaluate(out):
        (tmp_path / out).mkdir()
        Evaluations(tmp_path / out, lambda *a: None, threads).prefixes(rows)
        seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    for out in ("a", "b"):
        t = threading.Thread(target=evaluate, args=(out,))
        t.start()
        t.join()
        live.done()
    assert asked == [1, 2] and seen == [1, 2]
    assert torch.get_num_threads() == before  # this thread's own setting is untouched
    live.done()
    assert live.threads() == 2
