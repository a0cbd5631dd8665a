"""Sweeps: spec loading, point expansion, skip/resume after a kill, failed points and retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scarce.cli.main import main
from scarce.errors import UserError
from scarce.runs.store import RunStore
from scarce.runs.sweep import (
    SweepReport,
    SweepSpec,
    _pending,
    load_spec,
    point_overrides,
    resolve_points,
    run_sweep,
)

TINY = {"model.depth": 1, "model.aspect_ratio": 32, "model.head_dim": 16, "model.seq_len": 32,
        "train.batch_size": 4, "train.tokens": 256, "train.eval_tokens": 256, "train.threads": 1,
        "train.log_every": 1000}


@pytest.fixture
def store(tiny_store):
    return tiny_store


def tiny_spec(store, tmp_path, **grid) -> dict:
    return {"name": "t", "data": str(store.path), "set": dict(TINY), "grid": grid or {"optim.lr": [1e-3, 3e-3, 1e-2]},
            "out": str(tmp_path / "runs"), "results": str(tmp_path / "results")}


def rows(tmp_path, **filters) -> list[dict]:
    store = RunStore(tmp_path / "results")
    try:
        return store.list(**filters)
    finally:
        store.close()


def fake_train(cfg, run_dir, results):
    """A synthetic trainer: select loss is a function of the config; lr 1e-2 fails while FAIL is set."""
    if cfg.optim.lr == 1e-2 and os.environ.get("SCARCE_TEST_FAIL"):
        raise RuntimeError("diverged")
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "calls").write_text("x")
    loss = (cfg.optim.lr - 3e-3) ** 2 + cfg.optim.weight_decay
    return {"select_loss": loss, "val_loss": loss}


def test_spec_expansion_grid_points_search(store, tmp_path):
    spec = SweepSpec.from_dict({**tiny_spec(store, tmp_path), "points": [{"model": {"depth": 1}}, {"model.depth": 2}],
                                "search": {"samples": 2, "seed": 1, "space": {"optim.weight_decay": [0.1, 1.0],
                                                                              "optim.beta2": {"min": 0.9, "max": 0.99}}}})
    points = point_overrides(spec)
    assert len(points) == 2 * 3 * 2
    assert {p["model.depth"] for p in points} == {1, 2} and all(p["train.tokens"] == 256 for p in points)
    assert points == point_overrides(spec)  # the search is seeded
    epochs = point_overrides(SweepSpec.from_dict({**tiny_spec(store, tmp_path), "grid": {"train.epochs": [2]}}))
    assert "train.tokens" not in epochs[0]  # a point's horizon replaces the base's


def test_toml_and_python_specs(store, tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(f'name = "t"\ndata = "{store.path}"\n[set]\n"model.depth" = 1\n[grid]\n"optim.lr" = [1e-3, 2e-3]\n')
    py = tmp_path / "s.py"
    py.write_text(f"def make():\n    return {{'name': 't', 'data': {str(store.path)!r}, 'set': {{'model.depth': 1}}, "
                  f"'grid': {{'optim.lr': [1e-3, 2e-3]}}}}\n")
    assert load_spec(str(toml)) == load_spec(f"{py}:make")
    with pytest.raises(UserError, match="unknown key"):
        load_spec({"name": "t", "data": "x", "gird": {}})
    with pytest.raises(UserError, match="no function"):
        load_spec(f"{py}:nope")
    for bad in (["4"], [0], 8, [True]):
        with pytest.raises(UserError, match="branch_epochs"):
            load_spec({"name": "t", "data": "x", "branch_epochs": bad})


def test_failed_points_recorded_and_retried_on_request(store, tmp_path, monkeypatch):
    spec = tiny_spec(store, tmp_path)
    monkeypatch.setenv("SCARCE_TEST_FAIL", "1")
    lines = []
    report = run_sweep(spec, train_fn=fake_train, log=lines.append)
    assert len(report.ran) == 2 and len(report.failed) == 1
    failed = rows(tmp_path, sweep="t", status="failed")
    assert len(failed) == 1 and "diverged" in failed[0]["error"]
    assert any("FAILED RuntimeError: diverged" in line and "ETA" in line for line in lines)

    report = run_sweep(spec, train_fn=fake_train, log=lines.append)  # no retry: nothing runs
    assert report.ran == [] and len(report.skipped) == 2 and len(report.failed) == 1
    monkeypatch.delenv("SCARCE_TEST_FAIL")
    report = run_sweep(spec, train_fn=fake_train, retry_failed=True, log=lines.append)
    assert report.ran == [failed[0]["id"]]
    assert {r["status"] for r in rows(tmp_path, sweep="t")} == {"done"} and len(rows(tmp_path)) == 3


def test_killed_sweep_resumes_without_rerunning_done_points(store, tmp_path):
    """A real sweep in a subprocess (2 workers), SIGKILLed once its first point is done: its workers end with it
    (no orphan), and the rerun completes it. Six points of 16 steps: three points of 2 steps could all finish
    between two looks at the run store, and then there was nothing left to kill."""
    spec = tiny_spec(store, tmp_path, **{"optim.lr": [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3]})
    spec["set"] = {**spec["set"], "train.tokens": 16 * 4 * 32}
    n = len(spec["grid"]["optim.lr"])
    path = tmp_path / "spec.py"
    path.write_text(f"def make():\n    return {spec!r}\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scarce.cli", "sweep", f"{path}:make", "--threads", "1",
                             "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, workers = time.time() + 60, set()
    while time.time() < deadline and proc.poll() is None:
        workers |= _children(proc.pid) if Path("/proc").is_dir() else set()
        if (tmp_path / "results" / "runs.db").exists() and rows(tmp_path, status="done"):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = rows(tmp_path, status="done")
    assert 1 <= len(first) < n, proc.stderr.read().decode()
    if sys.platform.startswith("linux"):
        deadline = time.time() + 30
        while time.time() < deadline and [p for p in workers if _alive(p)]:
            time.sleep(0.1)
        assert workers and not [p for p in workers if _alive(p)]

    assert main(["sweep", f"{path}:make", "--threads", "1"]) == 0
    after = {r["id"]: r for r in rows(tmp_path, sweep="t")}
    assert len(after) == n and {r["status"] for r in after.values()} == {"done"}
    for r in first:  # not rerun
        assert after[r["id"]]["finished_at"] == r["finished_at"]
    assert main(["sweep", f"{path}:make"]) == 0  # all done: nothing to run


def test_point_killed_mid_run_resumes_from_its_checkpoint(store, tmp_path):
    """A point stopped after 2 of 6 steps (as if killed) is resumed, to the loss of an uninterrupted run."""
    from scarce.runs.launch import train

    spec = tiny_spec(store, tmp_path, **{"optim.lr": [3e-3]})
    spec["set"] = {**spec["set"], "train.tokens": 768, "train.eval_every": 2}
    point = resolve_points(SweepSpec.from_dict(spec))[0]
    train(point.config, point.run_dir, str(tmp_path / "results"), quiet=True, stop_at_step=2)
    assert [r["status"] for r in rows(tmp_path)] == ["running"]
    report = run_sweep(spec, log=lambda *a: None)
    assert report.ran == [point.run_id]

    fresh = {**spec, "out": str(tmp_path / "fresh"), "results": str(tmp_path / "fresh-results")}
    run_sweep(fresh, log=lambda *a: None)
    resumed, uninterrupted = rows(tmp_path)[0], RunStore(tmp_path / "fresh-results").list()[0]
    assert resumed["id"] == uninterrupted["id"] and resumed["status"] == "done"
    assert resumed["val_loss"] == uninterrupted["val_loss"]


def test_ctrl_c_is_a_kill_not_a_failure(store, tmp_path, monkeypatch):
    """An interrupted point is recorded interrupted (one line, no traceback), and the next sweep resumes it."""
    from scarce.train.trainer import Trainer

    step = Trainer.train_step

    def interrupted(self, i):
        if i == 1:
            raise KeyboardInterrupt
        return step(self, i)

    spec = tiny_spec(store, tmp_path, **{"optim.lr": [3e-3]})
    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, log=lambda *a: None)
    row = rows(tmp_path)[0]
    assert row["status"] == "interrupted" and "\n" not in row["error"] and "Traceback" not in row["error"]
    assert rows(tmp_path, status="interrupted") == [row]
    monkeypatch.setattr(Trainer, "train_step", step)
    report = run_sweep(spec, log=lambda *a: None)
    assert len(report.ran) == 1 and rows(tmp_path)[0]["status"] == "done"


def test_sweep_cli_errors(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read sweep spec" in capsys.readouterr().err
    assert main(["sweep", "x.toml", "--ray-address", "a:1"]) == 2


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_sigterm_of_a_parallel_sweep_leaves_no_worker_behind(store, tmp_path):
    """SIGTERM to `scarce sweep --workers 2` takes the Ctrl-C path: the workers stop, their runs are recorded
    as interrupted (and resumed by the next sweep), and no process outlives the parent."""
    spec = tiny_spec(store, tmp_path, **{"optim.lr": [1e-3, 2e-3, 3e-3, 4e-3]})
    spec["set"] = {**spec["set"], "train.tokens": 2_000_000, "train.eval_every": 5}  # minutes each: still running
    path = tmp_path / "spec.py"
    path.write_text(f"def make():\n    return {spec!r}\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scarce.cli", "sweep", f"{path}:make", "--workers", "2",
                             "--threads", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, workers = time.time() + 60, set()
    while time.time() < deadline and proc.poll() is None:
        workers |= _children(proc.pid)
        if (tmp_path / "results" / "runs.db").exists() and len(rows(tmp_path, status="running")) >= 2:
            break
        time.sleep(0.05)
    workers |= _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130, proc.stderr.read().decode()
    time.sleep(0.5)
    assert workers and not [p for p in workers if _alive(p)]
    started = rows(tmp_path)
    assert len(started) == 2 and {r["status"] for r in started} == {"interrupted"}  # the next sweep resumes them
    report = SweepReport("t", [])
    assert len(_pending(resolve_points(SweepSpec.from_dict(spec)), RunStore(tmp_path / "results"), False, report)) == 4


def test_each_point_is_resolved_once(store, tmp_path, monkeypatch):
    """A sweep point's config is resolved (paths, vocabulary from the store, tokenizer checks) once, where its
    run id is computed; the task, the launch and the trainer take it as it is. A direct `launch.train` resolves
    once too, and a resume not at all (config.json holds the resolved config)."""
    import scarce.runs.launch as launch
    import scarce.train.trainer as trainer

    calls = []
    real = trainer.resolve_config

    def counting(cfg, st):
        calls.append(cfg.optim.lr)
        return real(cfg, st)

    monkeypatch.setattr(trainer, "resolve_config", counting)
    monkeypatch.setattr(launch, "resolve_config", counting)
    report = run_sweep(SweepSpec.from_dict(tiny_spec(store, tmp_path, **{"optim.lr": [1e-3, 3e-3]})))
    assert len(report.ran) == 2 and sorted(calls) == [1e-3, 3e-3]
    calls.clear()
    point = report.points[0]
    cfg = launch.absolute_paths(point.config)
    cfg.model.vocab_size = 0  # as a user's config: filled from the store
    launch.train(cfg, tmp_path / "direct", str(tmp_path / "results"), quiet=True, stop_at_step=2)
    assert len(calls) == 1
    launch.resume(tmp_path / "direct", str(tmp_path / "results"), quiet=True)
    assert len(calls) == 1
