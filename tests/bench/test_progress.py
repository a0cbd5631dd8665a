"""The bench's long phases show their progress (done/total, rate, ETA) in its log: the teachers' generation in the
synthetic stage, evaluations on val windows, downstream scoring."""

from __future__ import annotations

import re

import pytest

from scarce.bench import common
from scarce.bench.evaluations import Evaluations
from scarce.bench.presets import BenchPreset
from scarce.bench.results import _downstream
from scarce.bench.stage.synthetic import synthetic_stage
from scarce.bench.stages import Runs
from scarce.ensemble import member_token_logprobs
from scarce.progress import StatusLine
from scarce.rundir import Member
from scarce.runs.executors import Execution
from scarce.runs.launch import train
from scarce.runs.store import RunRow
from tests.conftest import make_tiny_config

LINE = re.compile(r"^(?P<what>.+) \[[#.]{20}\] (?P<done>[\d,]+)/(?P<total>[\d,]+) (?P<unit>\w+)  [\d,]+ (?P=unit)/s  "
                  r"ETA \d+:\d\d:\d\d$")


@pytest.fixture(scope="module")
def members(tiny_store, tmp_path_factory):
    """Two tiny runs: an ensemble's members, as the synthetic stage's teachers."""
    root = tmp_path_factory.mktemp("members")
    rows = []
    for seed in (1, 2):
        cfg = make_tiny_config(tiny_store, **{"model.depth": 1, "train.tokens": 1536, "train.seed": seed,
                                              "train.eval_every": 3})
        train(cfg, root / f"run-{seed}", results=str(root / "res"), quiet=True)
        rows.append(RunRow(id=f"run{seed}", status="done", run_dir=str(root / f"run-{seed}"), config=cfg.to_dict(),
                           val_loss=5.0 + seed))
    return rows


@pytest.fixture
def every_line(monkeypatch):
    """Every progress line shown (in a bench, one every PROGRESS_EVERY seconds)."""
    monkeypatch.setattr(common, "PROGRESS_EVERY", 0.0)


def _progress(said: list[str], what: str) -> list[dict]:
    found = [m.groupdict() for m in map(LINE.match, said) if m and m["what"].startswith(what)]
    assert found, said
    last = found[-1]
    assert last["done"] == last["total"], last  # the phase's last line says it is done
    return found


def test_generation_in_the_synthetic_stage_shows_tokens_per_second(members, tmp_path, every_line):
    said: list[str] = []
    p = BenchPreset("progress", 6_000, members=2, synthetic=(1,), synthetic_self_frac=0.0, synthetic_passes=0.5)
    runs = Runs(p, tmp_path, Execution(results=str(tmp_path / "res")).held(1, threads=1), said.append)
    synthetic_stage(p, runs, members)
    lines = _progress(said, "generating")
    assert {x["unit"] for x in lines} == {"tokens"}
    assert int(lines[-1]["total"].replace(",", "")) >= 6_000  # 1x the budget the members trained on


def test_evaluations_on_val_windows_show_progress(members, tmp_path, every_line):
    said: list[str] = []
    Evaluations(tmp_path, said.append).prefixes(members)
    assert said[0] == "evaluating 2 run(s) on val windows"
    assert _progress(said, "evaluating 2 model(s)")


def test_downstream_scoring_shows_items_per_second(members, tiny_store, tmp_path, every_line):
    said: list[str] = []
    p = BenchPreset("progress", 6_000, downstream_items=20, n_boot=10)
    _downstream(p, tiny_store, {"ensemble": members}, members, Evaluations(tmp_path, said.append))
    lines = _progress(said, "scoring")
    assert lines[-1]["unit"] == "items" and len(lines) == 3  # the ensemble, then each run


def test_a_short_phase_adds_no_line_at_the_bench_default(members, tmp_path):
    said: list[str] = []
    Evaluations(tmp_path, said.append).windows(members)
    assert said == ["evaluating 2 run(s) on val windows"]


def test_the_population_stage_s_token_log_probs_show_progress(members, tiny_store):
    """`measure_population` (the bench's population stage) reads every member's log-probs of select and val."""
    said: list[str] = []
    cfg = members[0].config
    member_token_logprobs([Member.of_run(r.run_dir) for r in members], tiny_store.split("val"),
                          cfg.model.seq_len, progress=lambda: StatusLine(said.append, every=0.0))
    assert _progress(said, "scoring 2 model(s)")
