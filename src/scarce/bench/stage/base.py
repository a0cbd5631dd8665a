"""The stage protocol: what a stage of the bench is, and what it is handed at each step.

A stage is one object (`Stage`) in one module of this package, listed once in `STAGES` (`scarce.bench.stage`). The
pipeline, the results, the findings and the report iterate over that registry; none of them names a stage:
1. `wanted(p, recipe)`: whether the preset and the recipe ask for it;
2. `run(ctx)`: its runs, trained through the bench's `Runs` (`StageContext`: the preset, the stores, the stages before);
   returns its typed result;
3. `noise(m, p, result)`: seed noise of its own, where it repeats a setting (`Measured.use`); then
   `results(ms, result)`: its entry of bench.json under its `key` (a dict; None when it did not run), measured with
   the bench's paired draws (`Measure`), adding its recipes (and their draws and fits) to the bench's;
4. `findings(b, entry)`: its findings' records (`scarce.bench.findings.Bench`), "not run" ones when entry is None;
5. `report(doc, out, entry, fits)`: its section of the report (nothing when entry is None), and `describe(recipe)`:
   what each recipe it adds is.
Its settings stay fields of `BenchPreset` (presets are data, one dataclass of them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scarce.bench.findings import Bench
from scarce.bench.measured import Measured
from scarce.bench.presets import BenchPreset
from scarce.bench.stages import Runs, Stages
from scarce.report.report import Doc


@dataclass
class StageContext:
    """What a stage runs with: the preset, the recipe asked for, the bench's `Runs` (every run goes through its
    ledger), the token stores (multiple -> store) and what the stages before it returned (`Stages`: the built-in
    ones as fields, the registry's by name in `named`)."""

    p: BenchPreset
    recipe: str
    runs: Runs
    stores: dict
    stages: Stages


@dataclass
class Measure:
    """What a stage's results are measured with and added to: the preset, the paired draws (`Measured`, its `ev` the
    bench's evaluations), each size's ensemble evaluation (depth -> rows and prefix losses), and the bench's recipes
    (name -> entry), their draws (name -> loss draws) and fits (name -> fit), which a stage adds its own to."""

    p: BenchPreset
    m: Measured
    ens: dict
    recipes: dict
    draws: dict
    fits: dict


class Stage:
    """One stage of the bench (see the module docstring); `key`: its entry's key in bench.json (its name unless it
    says otherwise)."""

    name: str = ""
    key: str = ""
    findings_before: str = ""
    """The id of the bench's own finding (`scarce.bench.findings.FINDINGS`) its findings come before in the
    report; '' after them all."""

    def json_key(self) -> str:
        return self.key or self.name

    def wanted(self, p: BenchPreset, recipe: str) -> bool:
        raise NotImplementedError

    def run(self, ctx: StageContext) -> Any:
        raise NotImplementedError

    def noise(self, m: Measured, p: BenchPreset, result: Any) -> None:
        """Seed noise the stage measures itself (`Measured.use`), before any draws are made."""
        return None

    def results(self, ms: Measure, result: Any) -> dict:
        raise NotImplementedError

    def findings(self, b: Bench, entry: dict | None) -> list[dict]:
        return []

    def describe(self, recipe: str) -> str | None:
        """What a recipe this stage adds is (the report's recipe list), None for another stage's."""
        return None

    def report(self, doc: Doc, out: Path, entry: dict | None, fits: dict) -> None:
        return None
