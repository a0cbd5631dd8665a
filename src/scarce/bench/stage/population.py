"""The population stage (finding 8): cyclic trajectories at the largest size's chosen setting, their cycle-end
snapshots a population (`scarce.recipes.population`), against the ensemble at matched epochs. Its settings are
`BenchPreset.population`, `population_cycle_epochs` and `population_overrides`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scarce import atomic
from scarce.bench.common import bench_row, progress_lines, recipe_entry
from scarce.bench.findings import Bench, finding, judge
from scarce.bench.measured import interval
from scarce.bench.presets import BenchPreset
from scarce.bench.stage.base import Measure, Stage, StageContext
from scarce.data.store import open_store
from scarce.recipes.population import TOP_K, epochs_ratio, measure_population, population_members
from scarce.report.report import Doc, write_csv
from scarce.rundir import Member
from scarce.runs.store import RunRow

POPULATION_SEED = 1000
"""Seeds of the population's trajectories: POPULATION_SEED + t, apart from the ensemble's members' 1..K-1."""

FINDING = ("8", "a population of cyclic snapshots reaches the independent ensemble with several-fold fewer epochs",
           "q0: matches a 256-epoch independent ensemble with ~56 epochs, 4.6x fewer (3.8x at matched ensemble size)")
REACH_CRITERION = 3.0
"""Finding 8 holds when the ratio's interval lies above 3: the population needs at most a third of the epochs."""

RECIPES = {
    "population-prior": "cyclic trajectories at the chosen setting, as many epochs as the ensemble, their cycle-end "
                        "snapshots weighed by a prior fitted on select (probability mixture, top-K chosen on select)",
    "population-uniform": "the same snapshots, logits averaged uniformly",
    "population+ensemble-prior": "the population's snapshots and the ensemble's members together, weighed by a prior "
                                 "fitted on select (probability mixture, top-K chosen on select): the compute of both",
}
"""The recipes the stage adds, and what each is."""


@dataclass
class PopulationStage:
    """The population's cyclic trajectories at the largest size's chosen setting."""

    trajectories: list[RunRow]


def population_points(p: BenchPreset, chosen: dict, members: list) -> list[dict]:
    """The population's trajectories at the chosen setting: cyclic runs of `p.population_cycle_epochs` per cycle,
    as many whole cycles as make their epochs together those of the ensemble's `members`."""
    point, ce = chosen["point"], p.population_cycle_epochs
    total = sum(r.config.train.epochs for r in members)
    cycles = max(1, round(total / (p.population * ce)))
    return [{**point, "optim.schedule": "cyclic", "optim.cycle_epochs": ce, "train.epochs": cycles * ce,
             **p.population_overrides, "train.seed": POPULATION_SEED + t, "tags.stage": "population",
             "tags.trajectory": t} for t in range(p.population)]


def _flops_text(reach: dict | None) -> str:
    """The same ratio counted in training FLOPs (a chain's teacher forwards included), where the runs recorded them."""
    if not reach:
        return ""
    if reach["censored"] == "below":
        return "; in training FLOPs (teacher forwards counted) not reached"
    return (f"; in training FLOPs (teacher forwards counted) {reach['value']:.2f} [{reach['low']:.2f}, "
            f"{reach['high']:.2f}] (val windows)")


class Population(Stage):
    """bench.json's `population`: its trajectories, its allocation curve beside the ensemble's (val loss against
    total epochs; uniform and learned-prior weights), the prior over both, and the epochs-to-reach ratio with its
    interval (`reach_measured`: val windows and seed noise; `reach`: val windows alone, censoring noted)."""

    name = "population"

    def wanted(self, p: BenchPreset, recipe: str) -> bool:
        return recipe == "ensemble" and p.members > 1 and p.population > 0

    def run(self, ctx: StageContext) -> PopulationStage:
        """The population's trajectories (`population_points`) at the largest size, trained."""
        largest = ctx.p.largest
        points = population_points(ctx.p, ctx.stages.regularized.chosen[largest], ctx.stages.ensembles.members[largest])
        return PopulationStage(ctx.runs.run("population", points))

    def results(self, ms: Measure, result: PopulationStage) -> dict:
        """The population's measurements (`scarce.recipes.population.measure_population`) against the largest size's
        ensemble, and two recipes of its own at matched epochs: the population under its learned prior (fitted on
        select, its top-K chosen on select) and under uniform logit averaging. The epochs-to-reach ratio gets the
        bench's paired draws (val windows and each trajectory's seed noise, the members' for the target)."""
        p, m, trajectories, ensemble = ms.p, ms.m, result.trajectories, ms.ens[ms.p.largest]
        ce, members = p.population_cycle_epochs, ensemble["rows"]
        bpb_per_nat = ensemble["prefix_val_bpb"][-1] / ensemble["prefix_val_loss"][-1]  # tokens / (bytes ln 2)
        cycles = round(trajectories[0].config.train.epochs / ce)
        pop = population_members([r.run_dir for r in trajectories], cycles)
        ind = [Member.of_run(r.run_dir) for r in members]
        member_epochs = [r.config.train.epochs for r in members]
        curves, windows = measure_population(open_store(members[0].config.data), pop, ind, len(trajectories), ce,
                                             member_epochs, list(TOP_K), m.ev.device, progress_lines(m.ev.log))
        atomic.write_arrays(m.ev.out / "population" / "windows.npz", **windows)
        ids, flops = [r.id for r in trajectories], sum(r.flops for r in trajectories)
        last = curves["population_curve"][-1]
        for name, loss, key in (("population-prior", last["prior"], "prior"),
                                ("population-uniform", last["uniform_logit"], "logit")):
            ms.recipes[name] = recipe_entry(loss, loss * bpb_per_nat, flops, ids)
            ms.draws[name] = m.of(windows[f"population_{key}_{cycles}"], ids)
        both = ids + [r.id for r in members]
        ms.recipes["population+ensemble-prior"] = recipe_entry(
            curves["mixture"]["prior"], curves["mixture"]["prior"] * bpb_per_nat,
            flops + sum(r.flops for r in members), both)
        ms.draws["population+ensemble-prior"] = m.of(windows["mixture_prior"], both)
        curve = np.column_stack([m.of(windows[f"population_prior_{c}"], ids) for c in range(1, cycles + 1)])
        target = m.prefixes(members)[:, -1]
        epochs, total = [q["epochs"] for q in curves["population_curve"]], sum(member_epochs)
        ratio = np.array([epochs_ratio(epochs, row, t, total) for row, t in zip(curve, target)])
        curves["reach_measured"] = interval(curves["reach"]["prior"]["value"], ratio)
        curves["trajectories"] = [{**bench_row(r), "epochs": r.config.train.epochs, "seed": r.config.train.seed}
                                  for r in trajectories]
        curves["members"] = [bench_row(r) for r in members]
        curves["cycle_epochs"], curves["overrides"] = ce, dict(p.population_overrides)
        return curves

    def findings(self, b: Bench, entry: dict | None) -> list[dict]:
        """8. The independent ensemble's epochs over the epochs the population (learned prior, fitted on select)
        needs to reach that ensemble's val loss, interpolated in log epochs along the population's curve; its
        interval from the paired draws (val windows, seed noise). Reproduced when it lies above 3 (at most a third
        of the epochs)."""
        if not entry:
            return [finding(FINDING, "not run", {}, "", "not run (the preset has no population stage)")]
        est, reach, last = entry["reach_measured"], entry["reach"]["prior"], entry["population_curve"][-1]
        k = len(entry["members"])
        where = {"above": "the population's first point is already below it (the ratio is at least this)",
                 "below": "the population never reaches it within its epochs (the ratio is below "
                          f"{reach['target_epochs'] / last['epochs']:.2f})"}.get(reach["censored"], "")
        detail = (f"{len(entry['trajectories'])} trajectories of {entry['trajectories'][0]['epochs']:g} epochs in "
                  f"cycles of {entry['cycle_epochs']:g}: val {last['prior']:.4f} (prior, top {last['prior_k']}) and "
                  f"{last['uniform_logit']:.4f} (uniform logit) at {last['epochs']:g} epochs; the {k}-member "
                  f"ensemble {reach['target_loss']:.4f} at {reach['target_epochs']:g} epochs"
                  + (f"; {where}" if where else "") + _flops_text((entry.get("reach_flops") or {}).get("prior")))
        return [finding(FINDING, judge(est, REACH_CRITERION, "above"), est,
                        "x fewer epochs (ensemble epochs / population epochs to reach its val loss)", detail,
                        above=REACH_CRITERION, censored=reach["censored"])]

    def describe(self, recipe: str) -> str | None:
        return RECIPES.get(recipe)

    def report(self, doc: Doc, out: Path, entry: dict | None, fits: dict) -> None:
        """The population's curve beside the ensemble's, and the epochs-to-reach ratio."""
        if not entry:
            return
        traj, reach, prior = entry["trajectories"], entry["reach_measured"], entry["reach"]["prior"]
        doc.h2("Population against the ensemble")
        doc.p(f"{len(traj)} cyclic trajectories of {traj[0]['epochs']:g} epochs at the chosen setting, cycles of "
              f"{entry['cycle_epochs']:g} epochs, each cycle end a member "
              f"({', '.join(f'{k}={v}' for k, v in entry['overrides'].items())}); the learned prior is fitted on "
              f"select at every point, its top-K chosen on select. The ensemble's {len(entry['members'])} members "
              f"reach {prior['target_loss']:.4f} with {prior['target_epochs']:g} epochs; those epochs over the epochs "
              f"the population (prior) needs to reach it: {reach['value']:.2f} (95% [{reach['low']:.2f}, "
              f"{reach['high']:.2f}], val windows and seed noise; 0 where it never reaches it)"
              + (f", censored {prior['censored']}." if prior["censored"] else "."))
        rows = [["population", q["members"], q["epochs"], q["uniform_logit"], q["uniform_prob"], q["prior"],
                 q["prior_k"]] for q in entry["population_curve"]]
        rows += [["ensemble", q["members"], q["epochs"], q["logit"], q["prob"], "", ""]
                 for q in entry["independent_curve"]]
        cols = ["kind", "members", "total epochs", "val (uniform logit)", "val (uniform prob)", "val (prior)",
                "prior K"]
        doc.table(cols, rows)
        write_csv(out / "tables" / "population.csv", cols, rows)


STAGE = Population()
