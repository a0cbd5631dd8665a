"""The bench pipeline: stores, then every stage through the run store, then results and the report."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from scarce import atomic, rundir
from scarce.bench.common import Log, tokens_per_window
from scarce.bench.evaluations import Evaluations
from scarce.bench.presets import BENCH_RECIPES, DEFAULT_RECIPE, STANDARD_WD, BenchPreset, get_bench_preset
from scarce.bench.report import write_bench_report
from scarce.bench.result import BenchResult
from scarce.bench.results import bench_results
from scarce.bench.stage import STAGES, StageContext
from scarce.bench.stages import (
    Runs,
    Stages,
    ensemble_stage,
    regularized_stage,
    standard_points,
    standard_stage,
)
from scarce.data.prepare import derive_store, prepare
from scarce.data.store import open_store
from scarce.errors import UserError
from scarce.recipes.common import point_config
from scarce.runs.executors import Execution
from scarce.runs.gpushare import check_request, plan_workers
from scarce.runs.store import RunRow, results_root


def largest_standard(p: BenchPreset, stores: dict):
    """The config of the preset's largest standard run at 1x (what one bench worker holds at most, about)."""
    point = max(standard_points(p, stores), key=lambda q: q["model.depth"])
    return point_config(point, data=point["data"], preset=p.run_preset, overrides=p.overrides)


def bench(out: str | Path, preset: str | BenchPreset = "cpu-tiny", data: str | int | None = None,
          recipe: str = DEFAULT_RECIPE, execution: Execution | None = None, log: Log = print) -> BenchResult:
    """Run the benchmark into `out` (see the module docstring); returns what bench.json holds. `data`: a token
    store (its train split is the largest reference size), or a data seed: N > 0 prepares another sample of the
    preset's corpus (`prepare`'s seed) under OUT/stores/seed-N (None, 0: the preset's corpus as drawn). The
    `execution` (`scarce.runs.executors.Execution`) says where the runs train: `workers` 0 plans them (on GPUs
    `workers_per_gpu` on each, measured on the preset's largest standard run, else one per core); its `branch`
    lets runs of one setting share their stable phase where the preset's schedule allows; its `pool`, an executor
    shared with other benches running at the same time (`bench --samples`), is used instead of making one; its
    `threads`: those of this bench's own evaluations, asked before each (`Evaluations`)."""
    t0 = time.perf_counter()
    data, data_seed = (None, data) if isinstance(data, int) else (data, 0)
    p = get_bench_preset(preset)
    if recipe not in BENCH_RECIPES:
        raise UserError(f"unknown bench recipe {recipe!r} (known: {', '.join(BENCH_RECIPES)})")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    execution = execution or Execution()
    execution = dataclasses.replace(execution, results=str(results_root(execution.results).resolve()))
    check_request(execution.workers, execution.workers_per_gpu)
    execution.check()  # a bad executor or address fails here, before any work
    root = out / "stores" if data_seed == 0 else out / "stores" / f"seed-{data_seed}"
    stores = bench_stores(p, data, root, log, data_seed)
    pool = execution.pool
    workers = pool.workers if pool else plan_workers(execution.workers, execution.workers_per_gpu,
                                                     lambda: largest_standard(p, stores), log)
    log(f"bench {p.name}: budget {p.budget_tokens:,} tokens, sizes {list(p.sizes)}, reference x{list(p.multiples)}, "
        f"~{p.token_passes() / 1e6:.1f}M token-passes before the regularized descents, "
        f"{'as Ray tasks' if execution.executor == 'ray' else f'on {workers} worker(s)'}")
    runs = Runs(p, out, execution.held(workers, threads=1), log)
    base = _pretrain(p, runs, root, stores[1]) if p.pretrain_corpus else None
    init = {"init.source": base.run_dir} if base else {}
    stages = Stages(standard_stage(p, runs, stores, init), regularized_stage(p, runs, stores[1], init))
    if recipe == "ensemble" and p.members > 1:
        stages.ensembles = ensemble_stage(p, runs, stages.regularized.chosen)
    ctx = StageContext(p, recipe, runs, stores, stages)
    for stage in STAGES:  # the protocol's stages, in order (`scarce.bench.stage`)
        if stage.wanted(p, recipe):
            stages.named[stage.name] = stage.run(ctx)
    ev = Evaluations(out, log, execution.threads)
    result, fits = bench_results(p, recipe, stores, stages, ev)
    if base:
        result.cpt = _cpt(p, base, stores[1], ev)
    trained = runs.trained()  # the ledger: every row a stage was handed
    result.out, result.results, result.workers = str(out), execution.results, workers
    result.run_ids = [r.id for r in trained]
    result.token_passes = int(sum(r.tokens_seen or 0 for r in trained))
    result.data = str(stores[max(p.multiples)].path)
    result.data_seed = data_seed
    result.wall_seconds = time.perf_counter() - t0
    result.run_seconds = sum(rundir.own_seconds(r.summary or {}) for r in trained)  # a branch's shared part once
    result.cost = execution.cost
    result.report = str(write_bench_report(out, result, fits, execution.results))
    atomic.write_json(out / "bench.json", result.to_json())
    return result


def bench_stores(p: BenchPreset, data: str | None, root: Path, log: Log, seed: int = 0) -> dict:
    """Multiple -> token store: the largest is prepared (or given) in `root`; the others are nested prefixes of it."""
    top = max(p.multiples)
    if data and p.pretrain_corpus:
        raise UserError(f"--data does not apply to {p.name}: it prepares its two corpora itself (pretraining and "
                        "continued pretraining, one tokenizer)")
    if not data and not p.corpus:
        raise UserError(f"bench preset {p.name} needs --data STORE: its reference sizes ({p.budget_tokens * top:,} "
                        "train tokens) exceed the embedded corpus; prepare a store from a real corpus (docs/bench.md)")
    if data:
        base = open_store(data)
        held = base.split_tokens("train")
        budget = held // top  # the given store is the largest reference size
        if budget < 1:
            raise UserError(f"{data} holds {held:,} train tokens, too few for {top} reference sizes")
    else:
        budget = p.budget_tokens
        tokenizer = None
        if p.pretrain_corpus:  # the pretraining corpus trains the BPE; the CPT corpus is cut with it
            tokenizer = str(_pretrain_store(p, root, log, seed).path / "tokenizer.json")
        base = prepare(p.corpus, root / "base", p.vocab_size, budget * top, p.select_tokens,
                       p.val_tokens, tokenizer=tokenizer, tokenizer_bytes=p.tokenizer_bytes, log=log,
                       near_duplicates=p.near_duplicates, heldout_window=p.heldout_window, seed=seed,
                       piece_bytes=p.piece_bytes)
    stores = {}
    for m in p.multiples:
        n = budget * m
        held = base.split_tokens("train")
        stores[m] = base if n == held else derive_store(base, root / f"train-{n}", n, log=log)
    return stores


PRETRAIN_HELDOUT = 20_000
"""Select and val tokens of the pretraining store: they only pick the pretrained model's checkpoint."""


def _pretrain_store(p: BenchPreset, root: Path, log: Log, seed: int = 0):
    held = min(PRETRAIN_HELDOUT, p.select_tokens)
    return prepare(p.pretrain_corpus, root / "pretrain", p.vocab_size, p.pretrain_tokens, held, held, seed=seed,
                   tokenizer_bytes=p.tokenizer_bytes, log=log, near_duplicates=p.near_duplicates,
                   heldout_window=p.heldout_window, piece_bytes=p.piece_bytes)


def _pretrain(p: BenchPreset, runs: Runs, root: Path, cpt_store) -> RunRow:
    """The model continued pretraining starts from: the standard recipe on the pretraining corpus."""
    store = open_store(root / "pretrain")  # prepared with the other stores (`bench_stores`)
    if store.manifest["tokenizer"]["sha256"] != cpt_store.manifest["tokenizer"]["sha256"]:
        raise UserError(f"{cpt_store.path} was not cut with the tokenizer of {store.path}; remove {root}")
    point = {"data": str(store.path.resolve()), "model.depth": p.largest, "optim.lr": p.pretrain_lr,
             "optim.weight_decay": STANDARD_WD, "model.dropout": 0.0, "train.epochs": p.pretrain_epochs,
             "tags.stage": "pretrain"}
    return runs.run("pretrain", [point])[0]


def _cpt(p: BenchPreset, base: RunRow, store, ev: Evaluations) -> dict:
    """Where continued pretraining starts: the pretrained model and its loss on the CPT corpus's val."""
    on_cpt = dataclasses.replace(base, id=f"{base.id}@{store.fingerprint}",
                                 config=dataclasses.replace(base.config, data=str(store.path)))
    nll = ev.windows([on_cpt])[0]
    return {"pretrain_corpus": p.pretrain_corpus, "corpus": p.corpus, "pretrain_tokens": p.pretrain_tokens,
            "pretrain_epochs": p.pretrain_epochs, "base_run": base.id, "base_run_dir": base.run_dir,
            "base_val_loss_pretrain_corpus": base.val_loss,
            "base_val_loss": float(nll.sum() / (len(nll) * tokens_per_window(base)))}
