"""`scarce report` compares like with like: a swept-setting line joins runs that differ in the swept field alone,
tables rank a run within its token store and stage, and the curves plot names every run it was given."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from scarce.cli.main import main
from scarce.config import get_preset
from scarce.report.groups import line_label, run_groups, settings, swept_lines
from scarce.runs.store import RunRow, RunStore

STORES = {"budget": 1, "train-8x": 8}


def _row(root: Path, store: str, stage: str, wd: float, epochs: float, seed: int = 0) -> RunRow:
    """A finished run's row as a bench writes it: labels (multiple, sweep) and the branching steps vary with the
    point too, and must not split a line."""
    cfg = get_preset("tiny").to_dict()
    cfg["data"] = str(root / "stores" / store)
    cfg["optim"]["weight_decay"] = wd
    cfg["train"].update(epochs=epochs, seed=seed, branch_steps=[int(10 * epochs)])
    cfg["tags"] = {"stage": stage, "multiple": STORES[store], "sweep": f"bench-{stage}-{epochs}"}
    loss = 3.0 + wd / STORES[store] - 0.1 * epochs + 0.01 * seed
    run_id = f"{store}-{stage}-{wd}-{epochs}-{seed}"
    summary = {"run_id": run_id, "val_loss": loss, "select_loss": loss + 0.05, "flops": 1e12 * epochs * STORES[store]}
    return RunRow(id=run_id, status="done", run_dir=str(root / "runs" / run_id), config=cfg, summary=summary,
                  val_loss=loss, select_loss=loss + 0.05, flops=summary["flops"])


@pytest.fixture
def rows(tmp_path) -> list[RunRow]:
    """Runs that differ in store, stage, weight decay and epochs (and, on the budget's standard runs, seed)."""
    out = [_row(tmp_path, store, stage, wd, e) for store, stage, wd, e in
           itertools.product(STORES, ("standard", "regularized"), (0.1, 0.4), (1.0, 2.0, 4.0))]
    return out + [_row(tmp_path, "budget", "standard", 0.1, e, seed=1) for e in (1.0, 2.0)]


def _differing(a: RunRow, b: RunRow) -> set[str]:
    sa, sb = settings(a.config.to_dict()), settings(b.config.to_dict())
    return {k for k in sa.keys() | sb.keys() if sa.get(k) != sb.get(k)}


@pytest.mark.parametrize("field", ["train.epochs", "optim.weight_decay"])
def test_no_line_joins_runs_that_differ_in_anything_but_the_swept_field(rows, field):
    lines = swept_lines(rows, field)
    assert sorted(r.id for _, runs in lines for r in runs) == sorted(r.id for r in rows)  # every run, once
    for fixed, runs in lines:
        for a, b in itertools.combinations(runs, 2):
            assert _differing(a, b) <= {field}, (fixed, a.id, b.id)
    # and nothing finer: lines that differ only in labels or execution details are one line
    longest = {"train.epochs": 3, "optim.weight_decay": 2}[field]
    assert sum(len(runs) == longest for _, runs in lines) >= 8


def test_a_line_names_what_it_holds_fixed(rows):
    lines = swept_lines(rows, "train.epochs")
    labels = {line_label(fixed) for fixed, _ in lines}
    assert len(labels) == len(lines)
    assert "store train-8x, weight_decay 0.4, stage regularized, seed 0" in labels


def test_tables_rank_within_a_store_and_stage(rows):
    groups = run_groups(rows)
    assert len(groups) == 4
    for (data, stage), runs in groups.items():
        assert {(r.config.data, r.config.tags["stage"]) for r in runs} == {(data, stage)}
        assert [r.select_loss for r in runs] == sorted(r.select_loss for r in runs)


def test_the_report_of_a_bench_like_store(rows, tmp_path):
    """The report's tables and plots on a store of such runs: the 8x store's runs are ranked among themselves, and
    every run chosen for the curves is named, those that logged too few points under the plot."""
    store = RunStore(tmp_path / "res")
    for i, r in enumerate(rows):
        run_dir = Path(r.run_dir)
        run_dir.mkdir(parents=True)
        points = 5 if i % 2 else 1
        metrics = [{"type": "train", "step": s, "loss": 4.0 - s / 10} for s in range(1, points + 1)]
        metrics.append({"type": "eval", "step": points, "tokens_seen": 64 * points, "val_loss": r.val_loss})
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
        store.start(r.id, r.config.to_dict(), run_dir)
        store.finish(r.id, r.summary, run_dir)
    store.close()
    out = tmp_path / "report"
    assert main(["report", "--results", str(tmp_path / "res"), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    best = md.split("## Best runs on select")[1].split("##")[0]
    table = [line.split(" | ") for line in best.splitlines() if line.startswith(("| budget-", "| train-8x-"))]
    assert len(table) == 4 * 3 and {(t[1], t[2], t[3]) for t in table} == {
        (s, stage, str(rank)) for s in STORES for stage in ("standard", "regularized") for rank in (1, 2, 3)}
    curves = md.split("## Training curves")[1].split("##")[0]
    assert "Too few points logged" in curves and "of 8 runs" in curves
    assert (out / "plots" / "field_train_epochs.png").is_file()
