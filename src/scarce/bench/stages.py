"""The bench stages: each turns the preset into run points, trains them through `Runs` (one resumable sweep a
batch, every row handed out kept in its ledger) and returns a small typed result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scarce.bench.common import Log
from scarce.bench.presets import ONE_EVALUATION, STANDARD_WD, BenchPreset
from scarce.config import slowrun_overrides
from scarce.errors import UserError
from scarce.recipes.common import sweep_rows
from scarce.recipes.ensemble import member_points
from scarce.recipes.regularized import AXES, axes, descend
from scarce.recipes.standard import standard_points as recipe_standard_points
from scarce.recipes.synthetic import StudentGroup, train_students
from scarce.runs.executors import Execution
from scarce.runs.store import RunRow, RunStore


def standard_points(p: BenchPreset, stores: dict, init: dict | None = None) -> list[dict]:
    """The standard recipe's points (`scarce.recipes.standard.standard_points`: weight decay 0.1, the preset's one
    LR, no dropout): every size at 1x over standard_epochs; the reference size at every multiple."""
    init = init or {}
    points = _standard(p, stores[1], list(p.sizes), p.standard_epochs, 1, init)
    for m in p.multiples:
        if m != 1:
            points += _standard(p, stores[m], [p.reference_depth], p.reference_grid(m), m, init)
    return points


@dataclass
class StandardStage:
    """The standard recipe's runs: every size at 1x, the reference size at every multiple (its grid grown)."""

    rows: list[RunRow]


@dataclass
class RegularizedStage:
    """The regularized recipe's search: depth -> {point, row, descent} of the setting chosen on select, and every
    finished run tried (each once)."""

    chosen: dict
    tried: list[RunRow]


@dataclass
class EnsembleStage:
    """Depth -> the ensemble's members (member 0 the chosen regularized run)."""

    members: dict[int, list[RunRow]]


@dataclass
class Stages:
    """What every stage of one bench returned; a stage the preset or recipe skips is None (or empty). The stages of
    the protocol (`scarce.bench.stage.STAGES`) are in `named`, by name."""

    standard: StandardStage
    regularized: RegularizedStage
    ensembles: EnsembleStage = field(default_factory=lambda: EnsembleStage({}))
    named: dict = field(default_factory=dict)


def standard_stage(p: BenchPreset, runs: Runs, stores: dict, init: dict | None = None) -> StandardStage:
    """The standard recipe's grid (`standard_points`), its reference grown (`grow_reference`)."""
    return StandardStage(grow_reference(p, runs, stores, runs.run("standard", standard_points(p, stores, init)), init))


def grow_reference(p: BenchPreset, runs: Runs, stores: dict, standard: list[RunRow],
                   init: dict | None = None) -> list[RunRow]:
    """The reference grid grown where the run best on select trained the most epochs tried: that size of data gets
    twice the epochs, up to `p.reference_growth` times, so the reference is the standard recipe's best there and
    not a point its grid cut short (which would inflate every multiple). Returns the standard runs with the new."""
    init = init or {}
    for _ in range(p.reference_growth):
        points = []
        for m in p.multiples:
            mine = [r for r in standard if r.config.tags["multiple"] == m
                    and r.config.model.depth == p.reference_depth]
            most = max(r.config.train.epochs for r in mine)
            if best_on_select(mine).config.train.epochs == most:
                points += _standard(p, stores[m], [p.reference_depth], [most * 2], m, init)
        if not points:
            break
        standard = standard + runs.run("standard-growth", points)
    return standard


def _standard(p: BenchPreset, store, sizes: list[int], epochs, multiple: int, init: dict) -> list[dict]:
    return [{"data": str(store.path.resolve()), **point, "model.dropout": 0.0, "tags.stage": "standard",
             "tags.multiple": multiple, **init}
            for point in recipe_standard_points(sizes, [p.lr], list(epochs), STANDARD_WD)]


def ensemble_points(p: BenchPreset, chosen: dict) -> list[dict]:
    """Members 1..K-1 of the ensemble of a chosen regularized setting (member 0 is the chosen run itself): the
    ensemble recipe's members (`scarce.recipes.ensemble.member_points`) with the preset's member heuristic
    (`member_epochs_factor`, `member_wd_factor`), labelled as bench runs (stage and member tags)."""
    point = chosen["point"]
    members = member_points(point["model.depth"], point, p.members, p.member_epochs_factor, p.member_wd_factor)
    return [{**point, **{k: v for k, v in m.items() if k != "tags.group"}, "tags.stage": "ensemble"}
            for m in members[1:]]


def regularized_stage(p: BenchPreset, runs: Runs, store, init: dict | None = None) -> RegularizedStage:
    """The regularized recipe's search (`scarce.recipes.regularized.descend`) at every size, with the preset's
    grid, start, rounds, dropout and stack."""
    start = {k: v for k, v in p.regularized_start.items() if k in AXES} or None
    base = {"data": str(store.path.resolve()), "model.dropout": p.regularized_dropout, "tags.stage": "regularized",
            **(init or {})}
    stack = {**slowrun_overrides(looping=False), "tags.stack": "slowrun"} if p.stack else None
    return RegularizedStage(*descend(list(p.sizes), axes(p.lrs, p.weight_decays, p.epochs), start, p.max_rounds,
                                     lambda points: runs.run("regularized", points, diverged=True,
                                                             branch_epochs=p.epochs), base, stack))


def ensemble_stage(p: BenchPreset, runs: Runs, chosen: dict) -> EnsembleStage:
    """The ensemble of each size's chosen setting (every size with the joint limit, else the largest): every
    size's members in one batch of runs."""
    depths = p.sizes if p.joint else (p.largest,)
    points = {d: ensemble_points(p, chosen[d]) for d in depths}
    rows = iter(runs.run("ensemble", [x for d in depths for x in points[d]]))
    return EnsembleStage({d: [chosen[d]["row"]] + [next(rows) for _ in points[d]] for d in depths})


class Runs:
    """Everything a stage trains goes through here: batches of points as one resumable sweep (the run store skips
    what is done), synthetic students as typed jobs. Every row handed out is kept in `ledger` (run id -> row, in
    the order trained): what the bench trained."""

    def __init__(self, p: BenchPreset, out: Path, execution: Execution, log: Log):
        """`execution` holds its executor (`Execution.held`) and names the results root."""
        self.p, self.out, self.execution, self.log = p, out, execution, log
        self.results = execution.results
        self.ledger: dict[str, RunRow] = {}

    def trained(self) -> list[RunRow]:
        return list(self.ledger.values())

    def _keep(self, rows: list[RunRow]) -> list[RunRow]:
        for r in rows:
            self.ledger.setdefault(r.id, r)
        return rows

    def students(self, groups: list[StudentGroup]) -> list[dict]:
        """Every group's students in one batch of runs on the workers (`train_students`: no group waits for
        another's to end); each group's result with its students' run-store rows ("rows")."""
        trained = train_students(groups, executor=self.execution.pool, results=self.results)
        store = RunStore(self.results)
        try:
            for r in trained:
                r["rows"] = self._keep([store.get(s["run_id"], s["run_dir"]) for s in r["students"]])
        finally:
            store.close()
        return trained

    def run(self, sweep: str, points: list[dict], diverged: bool = False, branch_epochs=()) -> list[RunRow]:
        """The points' rows; a failed run stops the bench (rerun to resume), and so does a diverged one
        unless `diverged` (a search, where it is a result: the row has status 'diverged'). `branch_epochs`: the
        epoch counts later batches may train (`SweepSpec.branch_epochs`)."""
        order = sorted(range(len(points)), key=lambda i: -_cost(points[i]))  # longest first packs workers best
        overrides = {**self.p.overrides, "train.threads": 1, "train.eval_every": ONE_EVALUATION}
        rows = sweep_rows(f"bench-{sweep}", [points[i] for i in order], data=points[0]["data"],
                          out=str(self.out / "runs" / f"bench-{sweep}"), preset=self.p.run_preset, overrides=overrides,
                          execution=self.execution, log=self.log, diverged=True, branch_epochs=branch_epochs)
        by_point = dict(zip(order, rows))
        failed = [points[i] for i, r in by_point.items() if r is None]
        if failed:
            raise UserError(f"{len(failed)} of {len(points)} bench runs failed (first: {failed[0]}); see "
                            f"the run store in {self.results} for the errors (`scarce runs`), then rerun to resume")
        bad = [points[i] for i, r in by_point.items() if r.status == "diverged"]
        if bad and not diverged:
            raise UserError(f"{len(bad)} of {len(points)} bench runs diverged (first: {bad[0]}); lower the "
                            f"preset's learning rate")
        return self._keep([by_point[i] for i in range(len(points))])


def _cost(point: dict) -> float:
    return point.get("train.epochs", 1) * point.get("tags.multiple", 1) * point.get("model.depth", 1) ** 2


def best_on_select(rows: list[RunRow]) -> RunRow:
    return min(rows, key=lambda r: r.select_loss)
