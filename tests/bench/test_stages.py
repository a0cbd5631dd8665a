"""The bench's stages build their runs with the recipes (scarce.recipes), not with a second copy of them."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import SimpleNamespace

from scarce.bench import stages
from scarce.bench.presets import BENCH_PRESETS, STANDARD_WD
from scarce.bench.stage import STAGES
from scarce.bench.stage.distillation import distill_stage
from scarce.bench.stages import ensemble_points, standard_points
from scarce.recipes.distill import distill_points
from scarce.recipes.ensemble import member_points
from scarce.recipes.standard import standard_points as recipe_points
from scarce.runs.store import RunRow

KNOBS = ("model.depth", "optim.lr", "optim.weight_decay", "train.epochs")


def _knobs(points):
    return [{k: p[k] for k in KNOBS} for p in points]


def test_standard_stage_is_the_standard_recipe_at_the_presets_lr():
    for p in BENCH_PRESETS.values():
        stores = {m: SimpleNamespace(path=Path(f"/stores/{m}")) for m in p.multiples}
        points = standard_points(p, stores)
        on_budget = [x for x in points if x["tags.multiple"] == 1]
        assert _knobs(on_budget) == recipe_points(list(p.sizes), [p.lr], list(p.standard_epochs), STANDARD_WD)
        for m in p.multiples[1:]:
            mine = [x for x in points if x["tags.multiple"] == m]
            assert _knobs(mine) == recipe_points([p.reference_depth], [p.lr], list(p.reference_grid(m)), STANDARD_WD)
            assert {x["data"] for x in mine} == {str(Path(f"/stores/{m}").resolve())}
        assert all(x["model.dropout"] == 0.0 for x in points)


def test_ensemble_stage_is_the_ensemble_recipes_members_with_the_presets_heuristic():
    chosen = {"point": {"model.depth": 4, "optim.lr": 3e-3, "optim.weight_decay": 1.6, "train.epochs": 8,
                        "model.dropout": 0.1, "tags.stage": "regularized"}}
    for p in BENCH_PRESETS.values():
        points = ensemble_points(p, chosen)
        recipe = member_points(4, chosen["point"], p.members, p.member_epochs_factor, p.member_wd_factor)[1:]
        assert len(points) == p.members - 1
        assert [{k: x[k] for k in (*KNOBS, "train.seed")} for x in points] == \
            [{k: x[k] for k in (*KNOBS, "train.seed")} for x in recipe]
        assert all(x["model.dropout"] == 0.1 and x["tags.stage"] == "ensemble" for x in points)
    other = ensemble_points(SimpleNamespace(members=3, member_epochs_factor=2.0, member_wd_factor=0.5), chosen)
    assert [(x["train.epochs"], x["optim.weight_decay"]) for x in other] == [(16.0, 0.8), (16.0, 0.8)]


STAGE_RECIPES = {"_standard": ["recipe_standard_points"], "ensemble_points": ["member_points"],
                 "regularized_stage": ["descend", "axes"], "distill_stage": ["distill_points", "chain_distill"],
                 "synthetic_stage": ["student_group"], "students": ["train_students"]}
"""Each bench stage and the recipe functions it builds its runs with."""


def test_bench_stages_call_the_recipes_and_hold_no_recipe_logic():
    """An import check: every stage calls its recipe functions (imported from scarce.recipes), and no module of
    bench/ builds a search, a sweep or a distillation objective of its own."""
    funcs, module_of = {}, {}
    for module in (stages, *(sys.modules[type(s).__module__] for s in STAGES)):  # the protocol's stage modules too
        tree = ast.parse(Path(module.__file__).read_text())
        classes = [c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "Runs"]
        for f in [*tree.body, *(x for c in classes for x in c.body)]:
            if isinstance(f, ast.FunctionDef):
                funcs[f.name], module_of[f.name] = f, module
    for stage, recipe_fns in STAGE_RECIPES.items():
        called = {n.func.id for n in ast.walk(funcs[stage]) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        for name in recipe_fns:
            assert name in called, f"{stage} does not call {name}"
            assert getattr(module_of[stage], name).__module__.startswith("scarce.recipes."), name
    for path in Path(stages.__file__).parent.rglob("*.py"):  # the stage package's modules too
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert not names & {"Descent", "run_descents", "run_sweep", "SweepSpec", "Context"}, path.name
        assert not [s for s in strings if s.startswith("objective.")], path.name


def test_distill_stage_trains_the_distillation_recipes_points():
    class Runs:
        def __init__(self):
            self.points = []

        def run(self, sweep, points, diverged=False):
            self.points += points
            return [RunRow("x", "done", f"/runs/{len(self.points) - len(points) + i}", {}) for i in range(len(points))]

    chosen = {"point": {"model.depth": 3, "optim.lr": 3e-3, "tags.stage": "regularized"}}
    members = [RunRow(f"m{i}", "done", f"/m/{i}", {}) for i in range(3)]
    p = SimpleNamespace(distill_alpha=0.5, distill_temperature=1.0)
    runs = Runs()
    out = distill_stage(p, runs, chosen, members)
    point = {**chosen["point"], "tags.stage": "distill"}
    two = distill_points(point, ["/m/0", "/m/1", "/m/2"], 0.5, 1.0)
    assert runs.points[:2] == two
    assert [q["objective.teachers"] for q in runs.points[2:]] == [["/m/0"], ["/runs/2"]]  # each learns from the last
    assert [r.run_dir for r in out.chain] == ["/m/0", "/runs/2", "/runs/3"]
    assert two[0]["objective.teachers"] == ["/m/0", "/m/1", "/m/2"] and two[1]["objective.teachers"] == ["/m/0"]
