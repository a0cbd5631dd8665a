"""Recipes: named functions that produce sweeps, plus the logic that selects among their runs.

Each recipe takes a `Context` (token store, sizes, base preset and overrides, the execution: executor and
results root) and recipe options, runs its sweeps (resumable: done points are skipped) and returns a JSON-able
result; `run_recipe` also writes it to OUT/recipe.json and its fit table, if any, to OUT/<recipe>.csv.
"""

from __future__ import annotations

import csv
import inspect
import json
from pathlib import Path

from scarce import atomic
from scarce.errors import UserError
from scarce.recipes.ablate import ablate
from scarce.recipes.common import Context
from scarce.recipes.crossing import find_crossings
from scarce.recipes.ensemble import ensemble_scaling, joint
from scarce.recipes.isoflop import isoflop, miniseries
from scarce.recipes.population import population
from scarce.recipes.regularized import regularized
from scarce.recipes.standard import data_scaling, standard
from scarce.runs.executors import Execution
from scarce.runs.store import RunStore

RECIPES = {"standard": standard, "regularized": regularized, "ensemble": ensemble_scaling, "joint": joint,
           "isoflop": isoflop, "miniseries": miniseries, "data-scaling": data_scaling,
           "population": population, "ablate": ablate}


def recipe_function(name: str):
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r} (known: {', '.join(sorted(RECIPES))})")
    return RECIPES[name]


def run_recipe(name: str, data: str, out: str, sizes: list[int] | None = None, preset: str = "tiny",
               overrides: dict | None = None, execution: Execution | None = None, retry_failed: bool = False,
               train_fn=None, log=print, **options) -> dict:
    """Run recipe `name` on the token store `data`; run folders and results go under `out`."""
    fn = recipe_function(name)
    allowed = [p for p in inspect.signature(fn).parameters if p not in ("ctx", "sweep", "data")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UserError(f"recipe {name}: unknown option {unknown[0]!r} (options: {', '.join(allowed) or 'none'})")
    ctx = Context(data=data, out=out, sizes=sizes, preset=preset, overrides=dict(overrides or {}),
                  execution=execution or Execution(), retry_failed=retry_failed, train_fn=train_fn, log=log)
    result = fn(ctx, **options)
    result["crossings"] = _crossings(result, ctx.execution.results)
    atomic.write_json(Path(out) / "recipe.json", json.loads(json.dumps(result, default=str)))
    if result.get("table"):
        _write_table(Path(out) / f"{name}.csv", result["table"])
    return result


def _crossings(result: dict, results: str | None) -> list[dict]:
    store = RunStore(results)
    try:
        return find_crossings(store.list(sweep=result["sweep"], status="done"))
    finally:
        store.close()


def _write_table(path: Path, table: list[dict]) -> None:
    columns = list(dict.fromkeys(k for row in table for k in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(table)
