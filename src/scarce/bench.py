"""`scarce bench`: how much data efficiency a recipe buys over the standard recipe, with what confidence.

The pipeline, each step resumable through the run store (a run whose config hash is done is skipped):
1. the reference: the standard recipe (weight decay 0.1, epochs chosen on select) at several training-set
   sizes cut from one store (1x, 2x, 4x, ... the fixed budget; `derive_store` keeps select, val and the
   tokenizer shared), fitted as a data-scaling law L(D) = E + A·D^(-alpha);
2. the recipe on the fixed budget: a few regularized settings (more weight decay, more epochs, dropout),
   on the baseline architecture and with the `slowrun` stack (without looping), the one best on select
   kept, so the stack is used where it helps at that scale; then an ensemble of K members differing by seed (member 0 is the
   chosen single run), evaluated on val for every prefix k = 1..K;
3. fits: the K-scaling law of the ensemble, and each result's data efficiency D_ref(L) / D against the
   reference, parametric (inverted power law) and empirical (interpolated frontier), with 95% intervals.

Only select chooses (epochs, settings); val is used only to report. K is fixed by the preset, not chosen.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scarce import atomic
from scarce.config import slowrun_overrides
from scarce.data.store import derive_store, open_store, prepare
from scarce.ensemble import write_evaluation
from scarce.errors import UserError
from scarce.recipes.common import Context, run_points
from scarce.report.report import write_bench_report
from scarce.rundir import Member
from scarce.runs.executors import cpu_count, make_executor
from scarce.runs.store import results_root
from scarce.scaling import empirical_efficiency, fit_efficiency, fit_power_law

Log = Callable[[str], None]
RECIPES = {
    "ensemble": "regularized settings (baseline or slowrun architecture) chosen on select, then an ensemble of "
                "K seeds (the default)",
    "regularized": "regularized settings (baseline or slowrun architecture) chosen on select, one model",
}
DEFAULT_RECIPE = "ensemble"


@dataclass(frozen=True)
class BenchPreset:
    """A budgeted benchmark: the data, the model and every run of the pipeline."""

    name: str
    budget_tokens: int
    """The fixed training budget D (unique train tokens) the recipe gets."""
    multiples: tuple[int, ...] = (1, 2, 4, 8)
    """Reference training-set sizes as multiples of the budget (at least 3 for the law's 3 parameters)."""
    corpus: str = "stdlib"
    """Corpus source of the default token store (when --data is not given)."""
    vocab_size: int = 2048
    select_tokens: int = 16_000
    val_tokens: int = 16_000
    tokenizer_bytes: int = 2_000_000
    """BPE training bytes (0: all the train text)."""
    run_preset: str = "tiny"
    """Run preset every run starts from; `overrides` change it."""
    overrides: dict = field(default_factory=dict)
    """Config overrides applied to every run (model size, batch, context, eval cadence)."""
    reference_epochs: tuple[float, ...] = (1, 2)
    """Epochs tried by the standard recipe at each reference size; the best on select is kept."""
    reference_lr: float = 3e-3
    recipe_points: tuple[dict, ...] = ()
    """Regularized settings tried on the fixed budget (override sets); the best on select is kept."""
    members: int = 3
    """Ensemble members K (the default recipe reports K = members; every prefix is evaluated)."""
    n_boot: int = 1000
    """Bootstrap refits of every fit."""

    def __post_init__(self):
        if self.budget_tokens < 1:
            raise ValueError("budget_tokens: must be >= 1")
        if len(set(self.multiples)) < 3 or min(self.multiples) != 1:
            raise ValueError("multiples: need at least 3 distinct sizes, starting at 1")
        if self.members < 1 or not self.recipe_points or not self.reference_epochs:
            raise ValueError("members, recipe_points, reference_epochs: need at least one each")

    def token_passes(self) -> float:
        """Training tokens of all runs together (the budget the preset is sized by)."""
        ref = sum(self.multiples) * sum(self.reference_epochs)
        recipe = sum(p.get("train.epochs", 1) for p in self.recipe_points)
        ens = (self.members - 1) * max(p.get("train.epochs", 1) for p in self.recipe_points)
        return self.budget_tokens * (ref + recipe + ens)


def _regularized_grid(epochs: tuple[float, ...], wds: tuple[float, ...], dropout: float = 0.0) -> tuple[dict, ...]:
    return tuple({"optim.weight_decay": wd, "train.epochs": e, "model.dropout": dropout} for e in epochs for wd in wds)


def slowrun_point(epochs: float) -> dict:
    """A recipe point with the slowrun stack (weight decay 1.3 under Muon, dropout 0.1, EMA), no looping:
    looping added nothing in the knob ablation (benchmarks/results/ablate_cpu.md) and costs layer passes."""
    return {**slowrun_overrides(looping=False), "train.epochs": epochs, "tags.stack": "slowrun"}


# Throughput measured on this 2-core CPU in fp32: this ~1M-parameter model trains at ~4.4k tokens/s per
# 1-thread process, ~8.8k with both cores busy, evaluations included, so cpu-tiny (~4M token-passes)
# takes ~8-9 minutes and cpu-small (~24M) under an hour. The model is the `tiny` shape at depth 4, width 128 (~1M parameters
# with the 2k vocabulary), with a short context so a small budget still gives many optimiser steps.
CPU_MODEL = {"model.depth": 4, "model.seq_len": 128, "train.batch_size": 8, "train.eval_every": 0,
             "train.log_every": 1000}

BENCH_PRESETS: dict[str, BenchPreset] = {
    "cpu-tiny": BenchPreset(
        "cpu-tiny", budget_tokens=32_000, multiples=(1, 2, 4, 8), overrides=CPU_MODEL, select_tokens=12_000,
        val_tokens=12_000, reference_epochs=(2, 4), recipe_points=(
            {"optim.weight_decay": 0.8, "train.epochs": 4, "model.dropout": 0.0},
            {"optim.weight_decay": 1.6, "train.epochs": 4, "model.dropout": 0.1},
            slowrun_point(6),  # the stack costs ~1.5x per token: 6 epochs keep the quickstart under 10 minutes
        ), members=3),
    "cpu-small": BenchPreset(
        "cpu-small", budget_tokens=150_000, multiples=(1, 2, 4, 8), overrides=CPU_MODEL,
        reference_epochs=(1, 2, 4), select_tokens=40_000, val_tokens=40_000, tokenizer_bytes=4_000_000,
        recipe_points=_regularized_grid((8,), (0.8, 1.6), 0.1) + (
            {"optim.weight_decay": 0.8, "train.epochs": 8, "model.dropout": 0.0}, slowrun_point(8)), members=4),
    # GPU presets follow the published fixed-data setting: ~100M unique tokens, a GPT-2-small-shaped model.
    "gpu-100m": BenchPreset(
        "gpu-100m", budget_tokens=100_000_000, multiples=(1, 2, 4, 8), vocab_size=32_768,
        select_tokens=2_000_000, val_tokens=2_000_000, tokenizer_bytes=200_000_000, run_preset="gpt2-small",
        overrides={"train.batch_size": 32, "train.compile": True}, reference_epochs=(1, 2, 4),
        reference_lr=6e-4, recipe_points=_regularized_grid((8, 16), (0.8, 1.6), 0.1) + (slowrun_point(8), slowrun_point(16)),
        members=8),
}


def get_bench_preset(preset: str | BenchPreset) -> BenchPreset:
    if isinstance(preset, BenchPreset):
        return preset
    if preset not in BENCH_PRESETS:
        raise UserError(f"unknown bench preset {preset!r} (known: {', '.join(BENCH_PRESETS)})")
    return BENCH_PRESETS[preset]


# -- the result ------------------------------------------------------------------------------------

@dataclass
class BenchResult:
    """What `scarce bench` measured; bench.json holds it field for field and the report reads it."""

    preset: str
    recipe: str
    """The recipe asked for (`ensemble` or `regularized`)."""
    default_recipe: str
    """The row of `recipes` the headline reports (e.g. ensemble-k3)."""
    budget_tokens: int
    """The fixed budget: unique train tokens of the 1x store."""
    recipes: dict
    """Recipe name -> {val_loss, val_bpb, flops, run_ids, efficiency: {parametric, empirical}}."""
    efficiency: dict
    """The default recipe's data efficiency: {parametric, empirical}, each {value, low, high, warnings}."""
    fits: dict
    """Fit name -> its estimates with 95% intervals, or why it could not be fitted."""
    reference: list
    """Per reference size: the run best on select (multiple, train_tokens, epochs, losses, flops, run_id)."""
    single: list
    """Every regularized setting tried on the budget, with the one kept (`chosen`)."""
    ensemble: dict | None = None
    """Member ids, losses and flops, and the val loss of every prefix k = 1..K (recipe `ensemble`)."""
    out: str = ""
    results: str = ""
    workers: int = 0
    run_ids: list = field(default_factory=list)
    token_passes: int = 0
    data: str = ""
    wall_seconds: float = 0.0
    """This call's wall time (runs found done in the run store are not retrained)."""
    run_seconds: float = 0.0
    """Training time of every run of the bench, summed."""
    report: str = ""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> BenchResult:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# -- the pipeline ---------------------------------------------------------------------------------

def bench(out: str | Path, preset: str | BenchPreset = "cpu-tiny", data: str | None = None,
          recipe: str = DEFAULT_RECIPE, workers: int = 0, results: str | None = None, log: Log = print) -> BenchResult:
    """Run the benchmark into `out` (see the module docstring); returns what bench.json holds."""
    t0 = time.perf_counter()
    p = get_bench_preset(preset)
    if recipe not in RECIPES:
        raise UserError(f"unknown bench recipe {recipe!r} (known: {', '.join(RECIPES)})")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    results = str(results_root(results).resolve())
    workers = workers or cpu_count()
    if workers < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    executor = make_executor("local", workers, threads=1)  # always 1-thread processes
    stores = _stores(p, data, out, log)
    log(f"bench {p.name}: budget {p.budget_tokens:,} tokens, reference x{list(p.multiples)}, "
        f"~{p.token_passes() / 1e6:.1f}M token-passes on {workers} worker(s)")
    runs = _Runs(p, out, executor, results, log)
    ref_points = [_reference_point(p, stores[m], m, e) for m in p.multiples for e in p.reference_epochs]
    recipe_points = [_recipe_point(p, stores[1], q) for q in p.recipe_points]
    rows = runs.run("bench", ref_points + recipe_points)  # one batch: the workers stay busy
    reference = _choose_reference(p, ref_points, rows[:len(ref_points)])
    single_rows = rows[len(ref_points):]
    chosen = _best(single_rows)
    ensemble, ids, trained = None, [r["id"] for r in rows], list(rows)
    if recipe == "ensemble":
        point = recipe_points[single_rows.index(chosen)]
        members = [chosen] + runs.run("bench", [{**point, "train.seed": k, "tags.stage": "ensemble"}
                                                for k in range(1, p.members)])
        ensemble = _evaluate_ensemble(members, out, log)
        ids += [r["id"] for r in members[1:]]
        trained += members[1:]
    result, fits = _fits_and_results(p, recipe, reference, single_rows, chosen, ensemble)
    result.out, result.results, result.workers, result.run_ids = str(out), results, workers, ids
    result.token_passes = sum(r["tokens_seen"] for r in rows if r)
    result.data = str(stores[max(p.multiples)].path)
    result.wall_seconds = time.perf_counter() - t0
    result.run_seconds = sum(r.get("wall_seconds") or 0.0 for r in trained)
    result.report = str(write_bench_report(out, result, fits, results))
    atomic.write_json(out / "bench.json", result.to_json())
    return result


def _stores(p: BenchPreset, data: str | None, out: Path, log: Log) -> dict:
    """Multiple -> token store: the largest is prepared (or given); the others are nested prefixes of it."""
    top = max(p.multiples)
    if data:
        base = open_store(data)
        held = base.manifest["splits"]["train"]["tokens"]
        budget = held // top  # the given store is the largest reference size
        if budget < 1:
            raise UserError(f"{data} holds {held:,} train tokens, too few for {top} reference sizes")
    else:
        budget = p.budget_tokens
        base = prepare(p.corpus, out / "stores" / "base", p.vocab_size, budget * top, p.select_tokens,
                       p.val_tokens, tokenizer_bytes=p.tokenizer_bytes, log=log)
    stores = {}
    for m in p.multiples:
        n = budget * m
        held = base.manifest["splits"]["train"]["tokens"]
        stores[m] = base if n == held else derive_store(base, out / "stores" / f"train-{n}", n, log=log)
    return stores


def _reference_point(p: BenchPreset, store, multiple: int, epochs: float) -> dict:
    return {"data": str(store.path.resolve()), "optim.lr": p.reference_lr, "optim.weight_decay": 0.1,
            "model.dropout": 0.0, "train.epochs": epochs, "tags.stage": "reference", "tags.multiple": multiple}


def _recipe_point(p: BenchPreset, store, settings: dict) -> dict:
    return {"data": str(store.path.resolve()), "optim.lr": p.reference_lr, **settings, "tags.stage": "recipe"}


class _Runs:
    """Runs batches of points as one resumable sweep (the run store skips what is done)."""

    def __init__(self, p: BenchPreset, out: Path, executor, results: str, log: Log):
        self.p, self.out, self.executor, self.results, self.log = p, out, executor, results, log

    def run(self, sweep: str, points: list[dict]) -> list[dict]:
        order = sorted(range(len(points)), key=lambda i: -_cost(points[i]))  # longest first packs workers best
        overrides = {**self.p.overrides, "train.threads": 1}
        ctx = Context(data=points[0]["data"], out=str(self.out / "runs"), sizes=[1], preset=self.p.run_preset,
                      overrides=overrides, executor=self.executor, results=self.results, log=self.log)
        rows = run_points(ctx, sweep, [points[i] for i in order])
        by_point = dict(zip(order, rows))
        failed = [points[i] for i, r in by_point.items() if r is None]
        if failed:
            raise UserError(f"{len(failed)} of {len(points)} bench runs failed (first: {failed[0]}); see "
                            f"the run store in {self.results} for the errors (`scarce runs`), then rerun to resume")
        return [by_point[i] for i in range(len(points))]


def _cost(point: dict) -> float:
    return point.get("train.epochs", 1) * point.get("tags.multiple", 1)


def _best(rows: list[dict]) -> dict:
    return min(rows, key=lambda r: r["select_loss"])


def train_tokens(row: dict) -> int:
    """Unique train tokens of the store a run trained on."""
    return int(open_store(row["config"]["data"]).manifest["splits"]["train"]["tokens"])


def _choose_reference(p: BenchPreset, points: list[dict], rows: list[dict]) -> list[dict]:
    """Per reference size: the run best on select (its epochs chosen on select, never val)."""
    out = []
    for m in p.multiples:
        mine = [r for q, r in zip(points, rows) if q["tags.multiple"] == m]
        best = _best(mine)
        out.append({"multiple": m, "train_tokens": train_tokens(best), "row": best, "tried": mine})
    return out


def _evaluate_ensemble(members: list[dict], out: Path, log: Log) -> dict:
    """Every prefix k = 1..K on val, cached in OUT/ensemble/ensemble.json by the members' run ids."""
    path = out / "ensemble" / "ensemble.json"
    ids = [r["id"] for r in members]
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("member_ids") == ids:
            log(f"reusing the ensemble evaluation in {path}")
            return {**cached, "rows": members}
    log(f"evaluating the ensemble of {len(members)} members on val (every prefix)")
    report = write_evaluation(out / "ensemble", [Member.of_run(r["run_dir"]) for r in members],
                              extra={"member_ids": ids})
    return {**report, "rows": members}


# -- fits and the result ----------------------------------------------------------------------------

def _fits_and_results(p: BenchPreset, recipe: str, reference: list[dict], single_rows: list[dict], chosen: dict,
                      ensemble: dict | None) -> tuple[BenchResult, dict]:
    """The result's fits and recipe rows, and the fit objects (the report plots them)."""
    ref_tokens = [r["train_tokens"] for r in reference]
    ref_loss = [r["row"]["val_loss"] for r in reference]
    budget = reference[0]["train_tokens"]
    fits = {"reference": _quietly(fit_power_law, ref_tokens, ref_loss, n_boot=p.n_boot)}
    recipes = {"standard": _recipe_entry(reference[0]["row"]["val_loss"], reference[0]["row"]["val_bpb"],
                                         reference[0]["row"]["flops"], [reference[0]["row"]["id"]]),
               "regularized": _recipe_entry(chosen["val_loss"], chosen["val_bpb"], chosen["flops"], [chosen["id"]])}
    if ensemble is not None:
        k = len(ensemble["rows"])
        recipes[f"ensemble-k{k}"] = _recipe_entry(
            ensemble["prefix_val_loss"][-1], ensemble["prefix_val_bpb"][-1],
            sum(r["flops"] for r in ensemble["rows"]), [r["id"] for r in ensemble["rows"]])
        if k >= 3:
            fits["k_scaling"] = _quietly(fit_power_law, list(range(1, k + 1)), ensemble["prefix_val_loss"],
                                         n_boot=p.n_boot)
    for name, entry in recipes.items():
        for kind, fn in (("parametric", fit_efficiency), ("empirical", empirical_efficiency)):
            fit = _quietly(fn, ref_tokens, ref_loss, entry["val_loss"], budget, n_boot=p.n_boot)
            fits[f"efficiency_{kind}:{name}"] = fit
            entry["efficiency"][kind] = _estimate(fit, "efficiency")
    default = f"ensemble-k{len(ensemble['rows'])}" if ensemble is not None else "regularized"
    result = BenchResult(
        preset=p.name, recipe=recipe, default_recipe=default, budget_tokens=budget, recipes=recipes,
        efficiency=recipes[default]["efficiency"], fits={k: _fit_json(f) for k, f in fits.items() if f},
        reference=[{"multiple": r["multiple"], "train_tokens": r["train_tokens"], "run_id": r["row"]["id"],
                    "epochs": r["row"]["config"]["train"]["epochs"], "val_loss": r["row"]["val_loss"],
                    "val_bpb": r["row"]["val_bpb"], "select_loss": r["row"]["select_loss"],
                    "flops": r["row"]["flops"]} for r in reference],
        single=[{"run_id": r["id"], "chosen": r["id"] == chosen["id"], **_knobs(r),
                 **{c: r[c] for c in ("val_loss", "val_bpb", "select_loss", "flops")}} for r in single_rows],
        ensemble=None if ensemble is None else {
            "member_ids": [r["id"] for r in ensemble["rows"]],
            "member_val_loss": [m["val_loss"] for m in ensemble["members"]],
            "member_val_bpb": [m["val_bpb"] for m in ensemble["members"]],
            "prefix_val_loss": ensemble["prefix_val_loss"], "prefix_val_bpb": ensemble["prefix_val_bpb"],
            "member_flops": [r["flops"] for r in ensemble["rows"]]})
    return result, fits


def _recipe_entry(loss: float, bpb: float, flops: float, run_ids: list[str]) -> dict:
    return {"val_loss": loss, "val_bpb": bpb, "flops": flops, "run_ids": run_ids, "efficiency": {}}


def _knobs(row: dict) -> dict:
    c = row["config"]
    return {"architecture": c["tags"].get("stack", "baseline"), "epochs": c["train"]["epochs"],
            "weight_decay": c["optim"]["weight_decay"],
            "dropout": c["model"]["dropout"], "lr": c["optim"]["lr"], "seed": c["train"]["seed"]}


def _quietly(fn, *args, **kwargs):
    """Run a fit with its FitWarnings recorded on the Fit (not printed); None when it cannot be fitted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            return _Unfitted(str(e))


@dataclass
class _Unfitted:
    """A fit that could not be made (too few points, no frontier): reported with the reason."""

    reason: str
    estimates: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    kind: str = "unfitted"


def _estimate(fit, name: str) -> dict:
    if isinstance(fit, _Unfitted):
        return {"value": None, "low": None, "high": None, "note": fit.reason}
    return {**fit.to_json_dict()[name], "warnings": list(fit.warnings)}


def _fit_json(fit) -> dict:
    if isinstance(fit, _Unfitted):
        return {"kind": "unfitted", "reason": fit.reason}
    return {"kind": fit.kind, "estimates": fit.to_json_dict(), "n_points": fit.n_points, "n_boot": fit.n_boot,
            "warnings": list(fit.warnings)}
