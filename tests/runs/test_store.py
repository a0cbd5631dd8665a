import dataclasses
import json
import multiprocessing

from scarce.config import RunConfig, get_preset
from scarce.runs.store import RunRow, RunStore


def _open_and_write(args):
    root, worker = args
    for i in range(3):
        store = RunStore(root)
        store.start(f"w{worker}-{i}", {"tags": {"sweep": "race"}}, root)
        store.finish(f"w{worker}-{i}", {"val_loss": 1.0}, root)
        store.close()
    return worker


def test_workers_opening_a_new_store_together_all_get_in(tmp_path):
    # Switching a fresh database to WAL takes its exclusive lock without waiting; workers that open
    # a new store at the same moment used to fail with "database is locked".
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        for trial in range(8):
            root = tmp_path / f"r{trial}"
            assert sorted(pool.map(_open_and_write, [(str(root), w) for w in range(4)])) == [0, 1, 2, 3]
            rows = RunStore(root).list(sweep="race")
            assert len(rows) == 12 and all(r["status"] == "done" for r in rows)


def test_the_same_run_in_two_folders_is_two_rows(tmp_path):
    store = RunStore(tmp_path / "r")
    for folder in ("a", "b"):
        store.start("same-id", {"tags": {}}, tmp_path / folder)
    store.finish("same-id", {"val_loss": 2.0}, tmp_path / "b")
    rows = store.list()
    assert sorted((r["run_dir"].split("/")[-1], r["status"]) for r in rows) == [("a", "running"), ("b", "done")]
    assert store.get("same-id")["run_dir"].endswith("/b")  # without a folder: the done one
    assert store.get("same-id", tmp_path / "a")["status"] == "running"


def test_a_store_of_the_earlier_schema_is_moved_with_its_rows(tmp_path):
    import sqlite3

    (tmp_path / "r").mkdir()
    db = sqlite3.connect(tmp_path / "r" / "runs.db")
    db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, status TEXT NOT NULL, run_dir TEXT NOT NULL, preset TEXT, "
               "sweep TEXT, group_id TEXT, data TEXT, config TEXT NOT NULL, summary TEXT, val_loss REAL, val_bpb REAL, "
               "select_loss REAL, params INTEGER, tokens_seen INTEGER, flops REAL, wall_seconds REAL, started_at REAL, "
               "finished_at REAL, git_commit TEXT, versions TEXT, error TEXT)")
    db.execute("INSERT INTO runs (id, status, run_dir, config, val_loss) VALUES ('old', 'done', '/x', '{}', 3.5)")
    db.commit()
    db.close()
    store = RunStore(tmp_path / "r")
    assert [(r["id"], r["status"], r["val_loss"]) for r in store.list()] == [("old", "done", 3.5)]
    store.start("old", {"tags": {}}, tmp_path / "elsewhere")  # a second folder no longer replaces the first
    assert len(store.list()) == 2


def test_runs_lists_every_status_the_store_uses(tmp_path, capsys):
    """`scarce runs --status S` takes each status a run can have (diverged and interrupted too)."""
    import json

    import pytest

    from scarce.cli.main import main
    from scarce.runs.store import STATUSES

    store = RunStore(tmp_path)
    for status in STATUSES:
        store.start(f"id-{status}", {"preset": "tiny"}, tmp_path / status)
        if status == "done":
            store.finish(f"id-{status}", {"val_loss": 1.0}, tmp_path / status)
        elif status != "running":
            store.fail(f"id-{status}", "why", tmp_path / status, status)
    with pytest.raises(ValueError, match="unknown run status"):
        store.fail("id-failed", "why", tmp_path / "failed", "finished")
    store.close()
    for status in STATUSES:
        capsys.readouterr()
        assert main(["runs", "--results", str(tmp_path), "--status", status, "--json"]) == 0
        assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [f"id-{status}"]


def test_rows_come_back_typed(tmp_path):
    """A row is a RunRow: its columns as typed fields, the config a RunConfig (stored as its dict), JSON-able."""
    cfg = get_preset("tiny").to_dict()
    store = RunStore(tmp_path)
    store.start("abc", cfg, tmp_path / "run", data="/data")
    store.finish("abc", {"val_loss": 3.5, "select_loss": 3.6, "params": 1000, "run_id": "abc"}, tmp_path / "run")
    row = store.get("abc")
    store.close()
    assert isinstance(row, RunRow) and row.status == "done" and row.val_loss == 3.5 and row.params == 1000
    assert row.run_dir == str((tmp_path / "run").resolve()) and row.summary["select_loss"] == 3.6
    assert isinstance(row.config, RunConfig) and row.config.to_dict() == cfg
    assert json.loads(json.dumps(row.as_dict()))["config"] == cfg
    assert [f.name for f in dataclasses.fields(RunRow)][:3] == ["id", "status", "run_dir"]
