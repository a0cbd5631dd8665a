"""The population stage, the whole of it in one module (`scarce.bench.stage.population`): its points, its run, its
finding and its report section. The micro bench (tests/bench/test_bench.py) runs it end to end."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from scarce.bench.findings import VERDICTS
from scarce.bench.presets import BENCH_PRESETS, POPULATION
from scarce.bench.stage import STAGES
from scarce.bench.stage.base import StageContext
from scarce.bench.stage.population import POPULATION_SEED, STAGE, PopulationStage, population_points
from scarce.bench.stages import EnsembleStage, RegularizedStage, Stages, StandardStage
from scarce.report.report import Doc

CHOSEN = {"point": {"model.depth": 3, "optim.lr": 3e-3, "optim.weight_decay": 0.8, "train.epochs": 4,
                    "tags.stage": "regularized"}}


def _members(epochs):
    return [SimpleNamespace(config=SimpleNamespace(train=SimpleNamespace(epochs=e))) for e in epochs]


def _preset(**kw):
    return replace(BENCH_PRESETS["cpu-tiny"], **kw)


def test_population_points_train_as_many_whole_cycles_as_the_ensembles_epochs():
    p = _preset(population=2, population_cycle_epochs=2.0)
    points = population_points(p, CHOSEN, _members([4, 4, 4]))  # 12 epochs: 2 trajectories of 3 cycles
    assert [q["train.epochs"] for q in points] == [6.0, 6.0]
    assert [q["train.seed"] for q in points] == [POPULATION_SEED, POPULATION_SEED + 1]
    assert [q["tags.trajectory"] for q in points] == [0, 1]
    for q in points:
        assert q["optim.schedule"] == "cyclic" and q["optim.cycle_epochs"] == 2.0 and q["tags.stage"] == "population"
        assert {k: q[k] for k in POPULATION} == POPULATION and q["optim.lr"] == 3e-3 and q["model.depth"] == 3
    one = population_points(_preset(population=4, population_cycle_epochs=8.0), CHOSEN, _members([2, 2]))
    assert {q["train.epochs"] for q in one} == {8.0}  # at least one cycle each


def test_the_population_stage_is_registered_and_wanted_only_beside_an_ensemble():
    assert STAGE in STAGES and STAGE.json_key() == "population"
    assert STAGE.wanted(_preset(population=2), "ensemble")
    assert not STAGE.wanted(_preset(population=0), "ensemble")
    assert not STAGE.wanted(_preset(population=2), "regularized")
    assert not STAGE.wanted(_preset(population=2, members=1, synthetic=()), "ensemble")


def test_the_population_stage_trains_its_points_through_the_bench_runs():
    class Runs:
        def run(self, sweep, points, diverged=False, branch_epochs=()):
            self.sweep, self.points = sweep, points
            return [f"row{i}" for i in range(len(points))]

    p, runs = _preset(population=2, population_cycle_epochs=1.0), Runs()
    members = _members([2, 2, 2])
    stages = Stages(StandardStage([]), RegularizedStage({p.largest: CHOSEN}, []), EnsembleStage({p.largest: members}))
    out = STAGE.run(StageContext(p, "ensemble", runs, {}, stages))
    assert out == PopulationStage(["row0", "row1"]) and runs.sweep == "population"
    assert runs.points == population_points(p, CHOSEN, members)


ENTRY = {"reach_measured": {"value": 4.0, "low": 3.5, "high": 5.0},
         "reach": {"prior": {"value": 4.0, "censored": "", "target_loss": 3.9, "target_epochs": 12.0}},
         "population_curve": [{"members": 2, "epochs": 2.0, "prior": 4.0, "prior_k": 2, "uniform_logit": 4.1,
                               "uniform_prob": 4.05},
                              {"members": 4, "epochs": 4.0, "prior": 3.8, "prior_k": 3, "uniform_logit": 3.9,
                               "uniform_prob": 3.85}],
         "independent_curve": [{"members": 1, "epochs": 4.0, "logit": 4.2, "prob": 4.2}],
         "trajectories": [{"run_id": "t0", "epochs": 2.0}, {"run_id": "t1", "epochs": 2.0}],
         "members": [{"run_id": "m0"}, {"run_id": "m1"}, {"run_id": "m2"}], "cycle_epochs": 1.0,
         "overrides": {"optim.wd_floor": 0.7}}


def test_finding_8_is_judged_on_the_reach_interval_and_not_run_without_the_stage():
    (none,) = STAGE.findings(None, None)
    assert none["id"] == "8" and none["verdict"] == "not run"
    (eight,) = STAGE.findings(None, ENTRY)
    assert eight["verdict"] == "reproduced" and eight["value"] == 4.0 and eight["above"] == 3.0
    (low,) = STAGE.findings(None, {**ENTRY, "reach_measured": {"value": 2.0, "low": 1.5, "high": 2.5}})
    assert low["verdict"] == "not reproduced" and low["verdict"] in VERDICTS
    assert "2 trajectories of 2 epochs" in eight["detail"] and "3-member ensemble" in eight["detail"]
    assert "FLOPs" not in eight["detail"]  # trajectories whose snapshots recorded no FLOPs
    flops = {"prior": {"value": 1.5, "low": 1.2, "high": 1.9, "censored": ""}}
    (counted,) = STAGE.findings(None, {**ENTRY, "reach_flops": flops})
    assert "in training FLOPs (teacher forwards counted) 1.50 [1.20, 1.90]" in counted["detail"]


def test_the_report_section_and_table_only_where_the_stage_ran(tmp_path):
    doc = Doc("t")
    STAGE.report(doc, tmp_path, None, {})
    assert doc.blocks == [] and not (tmp_path / "tables").exists()
    STAGE.report(doc, tmp_path, ENTRY, {})
    assert doc.blocks[0] == ("h2", "Population against the ensemble")
    assert (tmp_path / "tables" / "population.csv").read_text().count("\n") == 1 + 2 + 1
    assert STAGE.describe("population-prior") and STAGE.describe("ensemble-k4") is None


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_stage_names_its_json_key_apart_from_bench_json_s_own_fields(stage):
    import dataclasses

    from scarce.bench.result import BenchResult

    fields = {f.name for f in dataclasses.fields(BenchResult)}
    assert stage.name and stage.json_key() not in fields
    assert len({s.json_key() for s in STAGES}) == len(STAGES)
