import multiprocessing

from scarce.runs.store import RunStore


def _open_and_write(args):
    root, worker = args
    for i in range(3):
        store = RunStore(root)
        store.start(f"w{worker}-{i}", {"tags": {"sweep": "race"}}, root)
        store.finish(f"w{worker}-{i}", {"val_loss": 1.0})
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
