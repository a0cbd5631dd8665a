"""The bench's stages build their runs with the recipes (scarce.recipes), not with a second copy of them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from scarce.bench.presets import BENCH_PRESETS, STANDARD_WD
from scarce.bench.stages import ensemble_points, standard_points
from scarce.recipes.ensemble import member_points
from scarce.recipes.standard import standard_points as recipe_points

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
