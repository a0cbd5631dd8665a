"""`scarce bench`: the published findings of data-scarce pretraining, measured on one fixed budget.

The pipeline, each step resumable through the run store (a run whose config hash is done is skipped):
1. the standard recipe (weight decay 0.1, no dropout): every model size on the fixed budget D at several
   epoch counts (does it overfit?), and the reference size at 1x, 2x, 4x, ... D with its epochs tuned on
   select at every size of data: the reference data-scaling law L(D) = E + A·D^(-alpha);
2. the regularized recipe: per size, certified coordinate descent over (LR, weight decay, epochs) on
   select, all sizes in lockstep; a power law in parameters with its asymptote;
3. ensembles of K seeds of each size's chosen setting (the largest size, or every size for the joint
   limit), every prefix k = 1..K evaluated on val; the K-scaling law and the two-step joint limit;
4. distillation at the largest size: the K-member ensemble into one student, self-distillation from
   one member, and chain distillation (member k learns from member k-1);
0. continued pretraining (a preset with `pretrain_corpus`, e.g. `cpu-cpt`): first a model is pretrained on
   another corpus (one tokenizer for both), and every run above starts from its weights: the standard CPT
   (usual weight decay, epochs tuned) is the reference and the recipes are regularized and ensemble CPT;
5. fits, data efficiency D_ref(L) / D (parametric and empirical) and the findings: each published
   finding checked and stated reproduced or not, with its number and 95% interval.

Only select chooses (epochs, settings); val is used only to report. Every run evaluates once, at its
end: the epoch count is the early stopping, as in the published recipes. Differences between models are
paired on the same val windows and get moving-block bootstrap intervals (`scarce.scaling.paired`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from scarce import atomic
from scarce.config import slowrun_overrides
from scarce.data.store import derive_store, open_store, prepare
from scarce.ensemble import evaluate_ensemble, write_evaluation
from scarce.errors import UserError
from scarce.eval import nextline
from scarce.eval.scoring import Scorer
from scarce.recipes.common import Context, descent_loss, run_points
from scarce.recipes.descent import Descent, run_descents
from scarce.report.report import write_bench_report
from scarce.rundir import Member
from scarce.runs.executors import default_workers, make_executor
from scarce.runs.store import results_root
from scarce.scaling import empirical_efficiency, fit_efficiency, fit_joint, fit_power_law
from scarce.scaling.paired import gain_share, loss_difference, resampled_losses

Log = Callable[[str], None]
RECIPES = {
    "ensemble": "the regularized recipe (certified descent per size), then an ensemble of K seeds; joint limit "
                "and distillation where the preset asks (the default)",
    "regularized": "the regularized recipe alone, one model per size",
}
DEFAULT_RECIPE = "ensemble"
STANDARD_WD = 0.1
ONE_EVALUATION = 10**9
"""train.eval_every of every bench run: evaluate once, at the end (the epoch count is the early stopping)."""


@dataclass(frozen=True)
class BenchPreset:
    """A budgeted benchmark: the data, the model family and every run of the pipeline."""

    name: str
    budget_tokens: int
    """The fixed training budget D (unique train tokens) the recipes get."""
    multiples: tuple[int, ...] = (1, 2, 4, 8)
    """Reference training-set sizes as multiples of the budget (at least 3 for the law's 3 parameters)."""
    corpus: str = "stdlib"
    """Corpus source of the default token store (when --data is not given); '' means the preset needs --data
    (its budget exceeds the embedded corpus)."""
    vocab_size: int = 2048
    select_tokens: int = 50_000
    val_tokens: int = 50_000
    tokenizer_bytes: int = 4_000_000
    """BPE training bytes (0: all the train text)."""
    near_duplicates: float = 0.5
    """prepare's near-duplicate share: near-copies in train and in select/val would favour memorisation."""
    heldout_window: int = 512
    """prepare's held-out window: select and val span many documents, so their losses agree."""
    run_preset: str = "tiny"
    """Run preset every run starts from; `overrides` change it."""
    overrides: dict = field(default_factory=dict)
    """Config overrides applied to every run (model family shape, batch, context)."""
    sizes: tuple[int, ...] = (2, 4)
    """Model depths, the size dial (width = depth x model.aspect_ratio)."""
    reference_size: int = 0
    """Depth of the reference data-scaling law; 0 takes the largest size."""
    lr: float = 3e-3
    """Learning rate of the standard recipe (and the regularized descent's starting point)."""
    standard_epochs: tuple[float, ...] = (2, 4, 8, 16)
    """Epochs of the standard recipe on the fixed budget, every size (it should overfit inside this grid)."""
    reference_epochs: dict = field(default_factory=dict)
    """Multiple -> epochs tried by the reference at that size of data (default: standard_epochs)."""
    lrs: tuple[float, ...] = (1.5e-3, 3e-3, 6e-3)
    weight_decays: tuple[float, ...] = (0.1, 0.4, 1.6, 3.2)
    epochs: tuple[float, ...] = (4, 8, 16, 32)
    """The regularized recipe's grid (weight decay reaching 30x the standard 0.1)."""
    regularized_start: dict = field(default_factory=dict)
    """Where each descent starts ({optim.lr, optim.weight_decay, train.epochs}); default: each axis's middle."""
    regularized_dropout: float = 0.0
    """Residual dropout of the regularized recipe's runs."""
    max_rounds: int = 3
    """Moves of each descent at most (its certificate is still complete)."""
    members: int = 4
    """Ensemble members K (recipe `ensemble`); every prefix is evaluated."""
    joint: bool = False
    """Ensembles at every size (the two-step joint limit) instead of the largest only."""
    distill: bool = False
    """Distillation at the largest size: ensemble to student, self-distillation, chain."""
    distill_alpha: float = 0.5
    distill_temperature: float = 1.0
    """Distillation settings (NanoGPT Slowrun's chain: alpha 0.5, T 1)."""
    stack: bool = False
    """Also try the `slowrun` architecture stack (no looping) at the chosen regularized setting."""
    n_boot: int = 1000
    """Bootstrap refits of every fit and paired comparison."""
    downstream_items: int = 500
    """Items of the embedded downstream task (`scarce_nextline`, from the 1x store's val split) each recipe
    and every run on the budget is scored on; 0 leaves the downstream column out."""
    smoke: bool = False
    """A smoke test of the pipeline, too small for findings: the report says so."""
    pretrain_corpus: str = ""
    """Continued pretraining: the corpus the starting model is pretrained on ('' = every run starts from
    random weights). Its BPE tokenizes both corpora; every run of the bench starts from that model."""
    pretrain_tokens: int = 0
    """Train tokens of the pretraining corpus."""
    pretrain_epochs: float = 1.0
    pretrain_lr: float = 3e-3

    def __post_init__(self):
        if self.budget_tokens < 1:
            raise ValueError("budget_tokens: must be >= 1")
        if len(set(self.multiples)) < 3 or min(self.multiples) != 1:
            raise ValueError("multiples: need at least 3 distinct sizes, starting at 1")
        if not self.sizes or not self.standard_epochs or self.members < 1:
            raise ValueError("sizes, standard_epochs, members: need at least one each")
        if self.reference_size and self.reference_size not in self.sizes:
            raise ValueError("reference_size: must be one of sizes")
        if self.pretrain_corpus and (len(self.sizes) != 1 or self.pretrain_tokens < 1):
            raise ValueError("pretrain_corpus: continued pretraining needs one size and pretrain_tokens >= 1")

    @property
    def largest(self) -> int:
        return max(self.sizes)

    @property
    def reference_depth(self) -> int:
        return self.reference_size or self.largest

    def reference_grid(self, multiple: int) -> tuple[float, ...]:
        return tuple(self.reference_epochs.get(multiple, self.standard_epochs))

    def token_passes(self) -> float:
        """Training tokens of the standard and reference runs (the rest depends on the descents)."""
        std = len(self.sizes) * sum(self.standard_epochs)
        ref = sum(m * sum(self.reference_grid(m)) for m in self.multiples if m != 1)
        return self.budget_tokens * (std + ref)


# Sized on this 2-core CPU (benchmarks/results/bench_regime_cpu.md): at a budget of 100k tokens the standard
# recipe of this family (width 32 x depth, T 128, batch 16, vocabulary 2048) overfits with its minimum at ~8
# epochs for depths 2 and 4, weight decay 3.2 beats it at the optimum, and select and val (50k tokens each, in
# 512-token windows of ~110 documents) agree within ~0.05 nats. Depth 4 trains at ~5.6k tokens/s per 1-thread
# process on an idle machine.
CPU_FAMILY = {"model.aspect_ratio": 32, "model.head_dim": 32, "model.seq_len": 128, "train.batch_size": 16,
              "train.log_every": 1000}

# cpu-small and cpu-full use vocabulary 512: at 2048 the 1x budget holds ~49 tokens per vocabulary entry and
# one doubling of the data bought 0.83 nats on the reference (alpha 0.72), swamping the recipes (1.22x); at
# 512 (~195 per entry) alpha is 0.23 and the same pipeline measured 2.08x [1.94, 2.20]. Select 90k and val 200k
# (was 100k each) bring the paired SE of a val difference from 0.0100-0.0141 to 0.0049-0.0072; that store, another
# sample of the corpus, reads 1.72x [1.69, 1.76] (benchmarks/results/bench_cpu_small.md).
BENCH_PRESETS: dict[str, BenchPreset] = {
    "cpu-tiny": BenchPreset(
        "cpu-tiny", budget_tokens=32_000, multiples=(1, 2, 4), select_tokens=12_000, val_tokens=12_000,
        tokenizer_bytes=2_000_000, heldout_window=256, overrides={**CPU_FAMILY, "train.batch_size": 8},
        sizes=(1, 2, 3), standard_epochs=(2, 4, 8), reference_epochs={2: (2, 4), 4: (1, 2)}, lrs=(3e-3,),
        weight_decays=(0.1, 0.8, 3.2), epochs=(4, 8), max_rounds=1, members=3, n_boot=300, smoke=True),
    "cpu-small": BenchPreset(
        "cpu-small", budget_tokens=100_000, multiples=(1, 2, 4, 8), vocab_size=512, select_tokens=90_000,
        val_tokens=200_000, heldout_window=384, overrides=CPU_FAMILY, sizes=(2, 3, 4),
        standard_epochs=(2, 4, 8, 16), reference_epochs={2: (2, 4, 8), 4: (2, 4, 8), 8: (2, 4, 8)},
        lrs=(1.5e-3, 3e-3), weight_decays=(0.8, 3.2, 6.4), epochs=(4, 8, 16),
        regularized_start={"optim.lr": 3e-3, "optim.weight_decay": 3.2, "train.epochs": 8}, max_rounds=2, members=4),
    "cpu-full": BenchPreset(
        "cpu-full", budget_tokens=100_000, multiples=(1, 2, 4, 8), vocab_size=512, select_tokens=90_000,
        val_tokens=200_000, heldout_window=384, overrides=CPU_FAMILY, sizes=(2, 3, 4),
        standard_epochs=(2, 4, 8, 16, 32), reference_epochs={2: (2, 4, 8, 16), 4: (2, 4, 8, 16), 8: (2, 4, 8)},
        lrs=(1.5e-3, 3e-3, 6e-3), weight_decays=(0.8, 1.6, 3.2, 6.4), epochs=(4, 8, 16, 32),
        regularized_start={"optim.lr": 3e-3, "optim.weight_decay": 3.2, "train.epochs": 8}, max_rounds=3,
        members=4, joint=True, distill=True, stack=True),
    # Continued pretraining (Kim et al.'s CPT setting in miniature): depth 4 pretrained on the stdlib's library
    # code (1.5M tokens), continued on a 100k-token budget of its test suites, the two domains one tokenizer.
    "cpu-cpt": BenchPreset(
        "cpu-cpt", budget_tokens=100_000, multiples=(1, 2, 4, 8), corpus="stdlib:tests", vocab_size=512,
        select_tokens=100_000, val_tokens=100_000, heldout_window=384, overrides=CPU_FAMILY, sizes=(4,),
        lr=1e-3, standard_epochs=(1, 2, 4, 8), reference_epochs={2: (1, 2, 4, 8), 4: (1, 2, 4), 8: (1, 2)},
        lrs=(5e-4, 1e-3, 2e-3), weight_decays=(0.4, 1.6, 3.2, 6.4), epochs=(2, 4, 8, 16),
        regularized_start={"optim.lr": 1e-3, "optim.weight_decay": 1.6, "train.epochs": 4}, max_rounds=2,
        members=4, pretrain_corpus="stdlib:library", pretrain_tokens=1_500_000, pretrain_epochs=1.0),
    # The published fixed-data setting: ~100M unique tokens, GPT-2-small-shaped models.
    "gpu-100m": BenchPreset(
        "gpu-100m", budget_tokens=100_000_000, multiples=(1, 2, 4, 8), corpus="", vocab_size=32_768,
        select_tokens=2_000_000,
        val_tokens=2_000_000, tokenizer_bytes=200_000_000, heldout_window=2048, run_preset="gpt2-small",
        overrides={"train.batch_size": 32, "train.compile": True, "model.aspect_ratio": 64, "model.head_dim": 64},
        sizes=(6, 9, 12), standard_epochs=(1, 2, 4, 8), reference_epochs={2: (1, 2, 4), 4: (1, 2), 8: (1, 2)},
        lr=6e-4, lrs=(3e-4, 6e-4, 1.2e-3), weight_decays=(0.1, 0.4, 1.6, 3.2), epochs=(4, 8, 16),
        regularized_dropout=0.1, members=8, joint=True, distill=True),
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
    """The row of `recipes` the headline reports (e.g. ensemble-k4)."""
    budget_tokens: int
    """The fixed budget: unique train tokens of the 1x store."""
    recipes: dict
    """Recipe name -> {val_loss, val_bpb, flops, run_ids, efficiency: {parametric, empirical}}."""
    efficiency: dict
    """The default recipe's data efficiency: {parametric, empirical}, each {value, low, high, warnings}."""
    fits: dict
    """Fit name -> its estimates with 95% intervals, or why it could not be fitted."""
    reference: list
    """Per reference size of data: the run best on select (multiple, train_tokens, epochs, losses, run_id),
    and `edge` when the chosen epochs sit at the edge of the grid tried."""
    single: list
    """Every regularized run on the budget (size, lr, weight decay, epochs, losses), the chosen ones marked."""
    ensemble: dict | None = None
    """The default recipe's ensemble: member ids, losses, flops and the val loss of every prefix k = 1..K."""
    findings: list = field(default_factory=list)
    """One entry per published finding: {id, name, reproduced (true/false/null), value, low, high, unit,
    published, detail}."""
    standard: list = field(default_factory=list)
    """The standard recipe on the budget: per size and epochs, select, val and final-weights val loss."""
    regularized: list = field(default_factory=list)
    """Per size: the certified descent's best point, loss, certificate and run."""
    ensembles: dict = field(default_factory=dict)
    """Depth -> {member_ids, prefix_val_loss, member_val_loss}: every size's ensemble (joint limit)."""
    distillation: dict | None = None
    """Students of the largest size: ensemble to student, self-distillation, chain, with their val losses."""
    hygiene: dict = field(default_factory=dict)
    """|select - val| on the reference runs and standard errors of paired loss differences (`_hygiene`)."""
    cpt: dict | None = None
    """Continued pretraining: the pretraining corpus, the pretrained model's run and its val loss on the CPT
    corpus before any continued training (None when runs start from random weights)."""
    downstream: dict | None = None
    """The embedded task (`scarce_nextline`): items, random baseline, accuracy of each run on the budget and
    each recipe with a bootstrap interval over items, and the rank correlation of val loss with accuracy
    across the runs (Spearman, interval over items and runs)."""
    smoke: bool = False
    out: str = ""
    results: str = ""
    workers: int = 0
    run_ids: list = field(default_factory=list)
    token_passes: int = 0
    data: str = ""
    data_seed: int = 0
    """The sample of the corpus (`prepare`'s seed; 0 the hash order): one store's multiples say nothing of how
    they move with the documents drawn, which repeating over seeds measures."""
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
          recipe: str = DEFAULT_RECIPE, workers: int = 0, results: str | None = None, log: Log = print,
          data_seed: int = 0) -> BenchResult:
    """Run the benchmark into `out` (see the module docstring); returns what bench.json holds. `data_seed` > 0
    prepares another sample of the preset's corpus (`prepare`'s seed) under OUT/stores/seed-N."""
    t0 = time.perf_counter()
    p = get_bench_preset(preset)
    if recipe not in RECIPES:
        raise UserError(f"unknown bench recipe {recipe!r} (known: {', '.join(RECIPES)})")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    results = str(results_root(results).resolve())
    workers = workers or default_workers()
    if workers < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    if data and data_seed:  # (prepare checks the seed itself)
        raise UserError("--data-seed draws another sample of the preset's corpus; with --data the store is given: "
                        "prepare it with `scarce prepare --seed N` instead")
    root = out / "stores" if data_seed == 0 else out / "stores" / f"seed-{data_seed}"
    stores = _stores(p, data, root, log, data_seed)
    log(f"bench {p.name}: budget {p.budget_tokens:,} tokens, sizes {list(p.sizes)}, reference x{list(p.multiples)}, "
        f"~{p.token_passes() / 1e6:.1f}M token-passes before the regularized descents, on {workers} worker(s)")
    runs = _Runs(p, out, make_executor("local", workers, threads=1), results, log)
    base = _pretrain(p, runs, root, stores[1]) if p.pretrain_corpus else None
    init = {"init.source": base["run_dir"]} if base else {}
    standard = runs.run("standard", _standard_points(p, stores, init))
    chosen, single = _regularized(p, runs, stores[1], init)
    ensembles, distillation = {}, None
    if recipe == "ensemble" and p.members > 1:
        for depth in (p.sizes if p.joint else (p.largest,)):
            ensembles[depth] = runs.run("ensemble", [{**chosen[depth]["point"], "train.seed": k,
                                                      "tags.stage": "ensemble", "tags.member": k}
                                                     for k in range(1, p.members)])
        ensembles = {d: [chosen[d]["row"]] + rows for d, rows in ensembles.items()}
        if p.distill:
            distillation = _distill(p, runs, chosen[p.largest], ensembles[p.largest])
    ev = _Evaluations(out, log)
    result, fits = _results(p, recipe, stores, standard, chosen, single, ensembles, distillation, ev)
    if base:
        result.cpt = _cpt(p, base, stores[1], ev)
    trained = [r for rows in (standard, single, *ensembles.values()) for r in rows]
    if distillation:
        trained += [distillation["student"], distillation["self"], *distillation["chain"][1:]]
    trained = list({r["id"]: r for r in ([base] if base else []) + trained}.values())
    result.out, result.results, result.workers, result.run_ids = str(out), results, workers, [r["id"] for r in trained]
    result.token_passes = int(sum(r["tokens_seen"] or 0 for r in trained))
    result.data = str(stores[max(p.multiples)].path)
    result.data_seed = data_seed
    result.wall_seconds = time.perf_counter() - t0
    result.run_seconds = sum(r.get("wall_seconds") or 0.0 for r in trained)
    result.report = str(write_bench_report(out, result, fits, results))
    atomic.write_json(out / "bench.json", result.to_json())
    return result


def _stores(p: BenchPreset, data: str | None, root: Path, log: Log, seed: int = 0) -> dict:
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
        held = base.manifest["splits"]["train"]["tokens"]
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
                       near_duplicates=p.near_duplicates, heldout_window=p.heldout_window, seed=seed)
    stores = {}
    for m in p.multiples:
        n = budget * m
        held = base.manifest["splits"]["train"]["tokens"]
        stores[m] = base if n == held else derive_store(base, root / f"train-{n}", n, log=log)
    return stores


PRETRAIN_HELDOUT = 20_000
"""Select and val tokens of the pretraining store: they only pick the pretrained model's checkpoint."""


def _pretrain_store(p: BenchPreset, root: Path, log: Log, seed: int = 0):
    held = min(PRETRAIN_HELDOUT, p.select_tokens)
    return prepare(p.pretrain_corpus, root / "pretrain", p.vocab_size, p.pretrain_tokens, held, held, seed=seed,
                   tokenizer_bytes=p.tokenizer_bytes, log=log, near_duplicates=p.near_duplicates,
                   heldout_window=p.heldout_window)


def _pretrain(p: BenchPreset, runs: _Runs, root: Path, cpt_store) -> dict:
    """The model continued pretraining starts from: the standard recipe on the pretraining corpus."""
    store = open_store(root / "pretrain")  # prepared with the other stores (`_stores`)
    if store.manifest["tokenizer"]["sha256"] != cpt_store.manifest["tokenizer"]["sha256"]:
        raise UserError(f"{cpt_store.path} was not cut with the tokenizer of {store.path}; remove {root}")
    point = {"data": str(store.path.resolve()), "model.depth": p.largest, "optim.lr": p.pretrain_lr,
             "optim.weight_decay": STANDARD_WD, "model.dropout": 0.0, "train.epochs": p.pretrain_epochs,
             "tags.stage": "pretrain"}
    return runs.run("pretrain", [point])[0]


def _cpt(p: BenchPreset, base: dict, store, ev: _Evaluations) -> dict:
    """Where continued pretraining starts: the pretrained model and its loss on the CPT corpus's val."""
    on_cpt = {**base, "id": f"{base['id']}@{store.fingerprint}", "config": {**base["config"], "data": str(store.path)}}
    nll = ev.windows([on_cpt])[0]
    return {"pretrain_corpus": p.pretrain_corpus, "corpus": p.corpus, "pretrain_tokens": p.pretrain_tokens,
            "pretrain_epochs": p.pretrain_epochs, "base_run": base["id"], "base_run_dir": base["run_dir"],
            "base_val_loss_pretrain_corpus": base["val_loss"],
            "base_val_loss": float(nll.sum() / (len(nll) * _tokens_per_window(base)))}


def _standard_points(p: BenchPreset, stores: dict, init: dict | None = None) -> list[dict]:
    """The standard recipe: every size at 1x over standard_epochs; the reference size at every multiple."""
    init = init or {}
    points = [{**_standard(p, stores[1], d, 1, e), **init} for d in p.sizes for e in p.standard_epochs]
    points += [{**_standard(p, stores[m], p.reference_depth, m, e), **init} for m in p.multiples if m != 1
               for e in p.reference_grid(m)]
    return points


def _standard(p: BenchPreset, store, depth: int, multiple: int, epochs: float) -> dict:
    return {"data": str(store.path.resolve()), "model.depth": depth, "optim.lr": p.lr,
            "optim.weight_decay": STANDARD_WD, "model.dropout": 0.0, "train.epochs": epochs,
            "tags.stage": "standard", "tags.multiple": multiple}


def _regularized(p: BenchPreset, runs: _Runs, store, init: dict | None = None) -> tuple[dict, list[dict]]:
    """Certified descent per size, in lockstep; returns depth -> {point, row, descent} and every run tried."""
    axes = {"optim.lr": sorted(p.lrs), "optim.weight_decay": sorted(p.weight_decays), "train.epochs": sorted(p.epochs)}
    start = {k: v for k, v in p.regularized_start.items() if k in axes} or None
    base = {"data": str(store.path.resolve()), "model.dropout": p.regularized_dropout, "tags.stage": "regularized",
            **(init or {})}
    tried: dict[str, tuple[dict, dict]] = {}

    def evaluate(points: list[dict]) -> list[float]:
        rows = runs.run("regularized", [{**base, **q} for q in points], diverged=True)
        for q, r in zip(points, rows):
            tried[_key(q)] = (q, r)
        return [descent_loss(r) for r in rows]

    descents = run_descents([Descent(axes, start, p.max_rounds) for _ in p.sizes], evaluate,
                            tag=lambda k, q: {"model.depth": p.sizes[k], **q})
    chosen = {}
    for depth, d in zip(p.sizes, descents):
        point, row = tried[_key({"model.depth": depth, **d["best"]})]
        chosen[depth] = {"point": {**base, **point}, "row": row, "descent": d}
    if p.stack:  # the slowrun stack at each size's chosen setting, kept where select prefers it
        stacked = runs.run("regularized", [{**c["point"], **slowrun_overrides(looping=False), "tags.stack": "slowrun"}
                                           for c in chosen.values()], diverged=True)
        for (depth, c), row in zip(list(chosen.items()), stacked):
            tried[_key({**c["point"], "tags.stack": "slowrun"})] = (c["point"], row)
            if descent_loss(row) < c["row"]["select_loss"]:
                chosen[depth] = {**c, "point": {**c["point"], **slowrun_overrides(looping=False),
                                                "tags.stack": "slowrun"}, "row": row}
    single = [row for _, row in tried.values() if row["status"] == "done"]  # diverged runs have no weights to judge
    return chosen, list({r["id"]: r for r in single}.values())


def _distill(p: BenchPreset, runs: _Runs, chosen: dict, members: list[dict]) -> dict:
    """At the largest size: the ensemble into a student, one member into a student of its own size
    (self-distillation), and a chain of K members, each learning from the one before."""
    point, k = chosen["point"], len(members)
    kd = {"objective.kind": "distill", "objective.alpha": p.distill_alpha,
          "objective.temperature": p.distill_temperature, "tags.stage": "distill"}
    teachers = [r["run_dir"] for r in members]
    student, self_student = runs.run("distill", [
        {**point, **kd, "objective.teachers": teachers, "train.seed": k, "tags.member": "student"},
        {**point, **kd, "objective.teachers": teachers[:1], "train.seed": k + 1, "tags.member": "self"}])
    chain = [members[0]]
    for i in range(1, k):
        chain += runs.run("distill", [{**point, **kd, "objective.teachers": [chain[-1]["run_dir"]], "train.seed": i,
                                       "tags.member": f"chain{i}"}])
    return {"student": student, "self": self_student, "chain": chain}


class _Runs:
    """Runs batches of points as one resumable sweep (the run store skips what is done)."""

    def __init__(self, p: BenchPreset, out: Path, executor, results: str, log: Log):
        self.p, self.out, self.executor, self.results, self.log = p, out, executor, results, log

    def run(self, sweep: str, points: list[dict], diverged: bool = False) -> list[dict]:
        """The points' rows; a failed run stops the bench (rerun to resume), and so does a diverged one
        unless `diverged` (a search, where it is a result: the row has status 'diverged')."""
        order = sorted(range(len(points)), key=lambda i: -_cost(points[i]))  # longest first packs workers best
        overrides = {**self.p.overrides, "train.threads": 1, "train.eval_every": ONE_EVALUATION}
        ctx = Context(data=points[0]["data"], out=str(self.out / "runs"), sizes=[1], preset=self.p.run_preset,
                      overrides=overrides, executor=self.executor, results=self.results, log=self.log)
        rows = run_points(ctx, f"bench-{sweep}", [points[i] for i in order], diverged=True)
        by_point = dict(zip(order, rows))
        failed = [points[i] for i, r in by_point.items() if r is None]
        if failed:
            raise UserError(f"{len(failed)} of {len(points)} bench runs failed (first: {failed[0]}); see "
                            f"the run store in {self.results} for the errors (`scarce runs`), then rerun to resume")
        bad = [points[i] for i, r in by_point.items() if r["status"] == "diverged"]
        if bad and not diverged:
            raise UserError(f"{len(bad)} of {len(points)} bench runs diverged (first: {bad[0]}); lower the "
                            f"preset's learning rate")
        return [by_point[i] for i in range(len(points))]


def _cost(point: dict) -> float:
    return point.get("train.epochs", 1) * point.get("tags.multiple", 1) * point.get("model.depth", 1) ** 2


def _key(point: dict) -> str:
    return repr(sorted((k, v) for k, v in point.items() if k not in ("data", "tags.stage")))


def _best(rows: list[dict]) -> dict:
    return min(rows, key=lambda r: r["select_loss"])


def train_tokens(row: dict) -> int:
    """Unique train tokens of the store a run trained on."""
    return int(open_store(row["config"]["data"]).manifest["splits"]["train"]["tokens"])


# -- evaluations on val windows (cached by run ids) -----------------------------------------------------

class _Evaluations:
    """Per-window val NLLs of runs and ensembles, cached under OUT/evals by the run ids they cover; on the
    GPU when there is one."""

    def __init__(self, out: Path, log: Log):
        self.out, self.log = out, log
        self.device = "cuda" if torch.cuda.is_available() else "cpu"

    def windows(self, rows: list[dict]) -> np.ndarray:
        """(len(rows), windows) summed val NLL of each run's weights."""
        return self._evaluate(rows, "member_window_nll", "prob")  # prob: no vocabulary-wide running sum

    def prefixes(self, rows: list[dict]) -> np.ndarray:
        """(len(rows), windows): the logit-averaged ensemble of the first k runs, k = 1..len(rows)."""
        return self._evaluate(rows, "prefix_window_nll", "logit")

    def _evaluate(self, rows: list[dict], what: str, combine: str) -> np.ndarray:
        ids = [r["id"] for r in rows]
        key = hashlib.sha256(json.dumps([combine, *ids]).encode()).hexdigest()[:16]
        path = self.out / "evals" / f"{key}.npz"
        if path.is_file():
            cached = np.load(path)
            if list(cached["ids"]) == ids:
                return cached[what]
        members = [Member.of_run(r["run_dir"]) for r in rows]
        cfg = rows[0]["config"]
        store = open_store(cfg["data"])
        self.log(f"evaluating {len(rows)} run(s) on val windows")
        r = evaluate_ensemble(members, store.split("val"), store.token_bytes(), cfg["model"]["seq_len"],
                              cfg["train"]["batch_size"], combine=combine, device=self.device, cache_dir=self.out)
        arrays = {"ids": np.array(ids), "member_window_nll": r["member_window_nll"],
                  "prefix_window_nll": r["prefix_window_nll"], "window_tokens": np.array(r["window_tokens"])}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), **arrays))
        return arrays[what]

    def nextline(self, rows: list[dict], items: list[dict]) -> np.ndarray:
        """(len(items),) bool: whether the logit-averaged ensemble of `rows` (one run: the run) picks each
        item's true line; cached by run ids and the items."""
        ids = [r["id"] for r in rows]
        key = hashlib.sha256(json.dumps([nextline.TASK, ids, items], sort_keys=True).encode()).hexdigest()[:16]
        path = self.out / "evals" / f"{nextline.TASK}-{key}.npy"
        if path.is_file():
            return np.load(path)
        scorer = Scorer([Member.of_run(r["run_dir"]) for r in rows], "logit", self.device)
        correct = nextline.correct(scorer, items)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), correct))
        return correct

    def ensemble(self, rows: list[dict], name: str) -> dict:
        """The ensemble.json of `rows` (every prefix on val), cached under OUT/ensembles/NAME."""
        path = self.out / "ensembles" / name / "ensemble.json"
        ids = [r["id"] for r in rows]
        if path.is_file():
            cached = json.loads(path.read_text())
            if cached.get("member_ids") == ids:
                return {**cached, "rows": rows}
        self.log(f"evaluating the ensemble of {len(rows)} members ({name}) on val, every prefix")
        report = write_evaluation(path.parent, [Member.of_run(r["run_dir"]) for r in rows], extra={"member_ids": ids},
                                  device=self.device)
        return {**report, "rows": rows}


# -- fits, findings and the result ------------------------------------------------------------------------

def _results(p: BenchPreset, recipe: str, stores: dict, standard: list[dict], chosen: dict, single: list[dict],
             ensembles: dict, distillation: dict | None, ev: _Evaluations) -> tuple[BenchResult, dict]:
    """The result and the fit objects (the report plots them)."""
    reference = _choose_reference(p, standard)
    ref_tokens = [r["train_tokens"] for r in reference]
    ref_loss = [r["row"]["val_loss"] for r in reference]
    budget = reference[0]["train_tokens"]
    # intervals from the same resampled val windows for every model: the reference points and each recipe
    ref_windows = ev.windows([r["row"] for r in reference])
    tpw = _tokens_per_window(reference[0]["row"])
    fits: dict = {"reference": _quietly(fit_power_law, ref_tokens, ref_loss,
                                        y_draws=resampled_losses(ref_windows, tpw, p.n_boot))}
    ens_evals = {d: ev.ensemble(rows, f"d{d}") for d, rows in ensembles.items()}
    recipes = {"standard": _entry(reference[0]["row"]["val_loss"], reference[0]["row"]["val_bpb"],
                                  reference[0]["row"]["flops"], [reference[0]["row"]["id"]])}
    windows = {"standard": ref_windows[0]}
    best_reg = min(chosen.values(), key=lambda c: c["row"]["select_loss"])["row"]
    recipes["regularized"] = _entry(best_reg["val_loss"], best_reg["val_bpb"], best_reg["flops"], [best_reg["id"]])
    windows["regularized"] = ev.windows([best_reg])[0]
    default = "regularized"
    if ens_evals:
        e = ens_evals[p.largest]
        k = len(e["rows"])
        default = f"ensemble-k{k}"
        recipes[default] = _entry(e["prefix_val_loss"][-1], e["prefix_val_bpb"][-1],
                                  sum(r["flops"] for r in e["rows"]), [r["id"] for r in e["rows"]])
        windows[default] = ev.prefixes(e["rows"])[-1]
        if k >= 3:  # intervals from the losses on resampled val windows (3-4 points say little otherwise)
            draws = resampled_losses(ev.prefixes(e["rows"]), _tokens_per_window(e["rows"][0]), p.n_boot)
            fits["k_scaling"] = _quietly(fit_power_law, list(range(1, k + 1)), e["prefix_val_loss"], y_draws=draws)
    if len(p.sizes) >= 3:
        rows = [chosen[d]["row"] for d in p.sizes]
        draws = resampled_losses(ev.windows(rows), _tokens_per_window(rows[0]), p.n_boot)
        fits["regularized_params"] = _quietly(fit_power_law, [r["summary"]["non_embedding_params"] for r in rows],
                                              [r["val_loss"] for r in rows], y_draws=draws)
    if p.joint and len(ens_evals) >= 3 and all(len(e["rows"]) >= 3 for e in ens_evals.values()):
        n, k, loss = [], [], []
        for e in ens_evals.values():
            for i, value in enumerate(e["prefix_val_loss"]):
                n.append(e["rows"][0]["summary"]["non_embedding_params"])
                k.append(i + 1)
                loss.append(value)
        fits["joint"] = _quietly(fit_joint, n, k, loss, n_boot=p.n_boot)
    if "joint" in fits and not isinstance(fits["joint"], _Unfitted):
        limit = fits["joint"].estimates["E"]
        recipes["joint-limit"] = _entry(limit.value, None, None, [])
    for name, entry in recipes.items():
        draws = None
        if name in windows:  # the joint limit is a fitted number, not a model on val windows
            draws = resampled_losses(np.vstack([ref_windows, windows[name]]), tpw, p.n_boot)
        for kind, fn in (("parametric", fit_efficiency), ("empirical", empirical_efficiency)):
            fit = _quietly(fn, ref_tokens, ref_loss, entry["val_loss"], budget, n_boot=p.n_boot, loss_draws=draws)
            fits[f"efficiency_{kind}:{name}"] = fit
            entry["efficiency"][kind] = _estimate(fit, "efficiency")
    std_table = _standard_table(p, standard, ev)
    findings = _findings(p, std_table, chosen, fits, recipes, ens_evals, distillation, ev, reference, default)
    downstream = None
    if p.downstream_items:
        groups = {"standard": [reference[0]["row"]], "regularized": [best_reg]}
        if ens_evals:
            groups[default] = ens_evals[p.largest]["rows"]
        runs_on_budget = list({r["id"]: r for r in [t["row"] for t in std_table] + single}.values())
        downstream = _downstream(p, stores[1], groups, runs_on_budget, ev)
        for name, acc in downstream["recipes"].items():
            recipes[name]["downstream"] = acc
    result = BenchResult(
        preset=p.name, recipe=recipe, default_recipe=default, budget_tokens=budget, recipes=recipes,
        efficiency=recipes[default]["efficiency"], fits={k: _fit_json(f) for k, f in fits.items() if f},
        reference=[{"multiple": r["multiple"], "train_tokens": r["train_tokens"], "run_id": r["row"]["id"],
                    "epochs": r["row"]["config"]["train"]["epochs"], "epochs_tried": r["epochs_tried"],
                    "edge": r["edge"], "val_loss": r["row"]["val_loss"], "val_bpb": r["row"]["val_bpb"],
                    "select_loss": r["row"]["select_loss"], "flops": r["row"]["flops"]} for r in reference],
        single=[{"run_id": r["id"], "chosen": any(r["id"] == c["row"]["id"] for c in chosen.values()), **_knobs(r),
                 **{c: r[c] for c in ("val_loss", "val_bpb", "select_loss", "flops")}} for r in single],
        ensemble=None if not ens_evals else _ensemble_json(ens_evals[p.largest]),
        ensembles={str(d): _ensemble_json(e) for d, e in ens_evals.items()},
        findings=findings, standard=[{k: v for k, v in r.items() if k != "row"} for r in std_table],
        regularized=[{"depth": d, "best": c["descent"]["best"], "select_loss": c["descent"]["loss"],
                      "val_loss": c["row"]["val_loss"], "certified": c["descent"]["certified"],
                      "evaluations": c["descent"]["evaluations"], "certificate": c["descent"]["certificate"],
                      "run_id": c["row"]["id"], "params": c["row"]["summary"]["non_embedding_params"]}
                     for d, c in chosen.items()],
        distillation=None if distillation is None else {
            "student": _brief(distillation["student"]), "self": _brief(distillation["self"]),
            "chain": [_brief(r) for r in distillation["chain"]]},
        hygiene=_hygiene(reference, findings, std_table, chosen, ev, p.n_boot), downstream=downstream, smoke=p.smoke)
    return result, fits


def _choose_reference(p: BenchPreset, standard: list[dict]) -> list[dict]:
    """Per size of data: the reference size's run best on select (epochs chosen on select, never val),
    flagged when the chosen epochs sit at an edge of the grid tried."""
    out = []
    for m in p.multiples:
        mine = [r for r in standard if r["config"]["tags"]["multiple"] == m
                and r["config"]["model"]["depth"] == p.reference_depth]
        best = _best(mine)
        tried = sorted(r["config"]["train"]["epochs"] for r in mine)
        e = best["config"]["train"]["epochs"]
        edge = "" if len(tried) < 2 or tried[0] < e < tried[-1] else ("most" if e == tried[-1] else "fewest")
        out.append({"multiple": m, "train_tokens": train_tokens(best), "row": best, "epochs_tried": tried,
                    "edge": edge})
    return out


def _downstream(p: BenchPreset, store, groups: dict, runs: list[dict], ev: _Evaluations) -> dict:
    """Accuracy on the embedded task of each recipe (`groups`: name -> its runs, an ensemble when several)
    and of every run on the budget, with percentile intervals over items; and whether lower val loss goes
    with higher accuracy across those runs: Spearman's rho, its interval resampling items and runs together."""
    items = nextline.items(store, p.downstream_items)
    if not items:
        return {"task": nextline.TASK, "items": 0, "random": nextline.RANDOM_BASELINE, "recipes": {}, "runs": [],
                "correlation": None}
    ev.log(f"scoring {len(runs)} runs and {len(groups)} recipes on {len(items)} items of {nextline.TASK}")
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(items), size=(p.n_boot, len(items)))

    def accuracy(correct: np.ndarray) -> dict:
        draws = correct[picks].mean(axis=1)
        return {"value": float(correct.mean()), "low": float(np.quantile(draws, 0.025)),
                "high": float(np.quantile(draws, 0.975))}

    recipes = {name: accuracy(ev.nextline(rows, items)) for name, rows in groups.items()}
    table = np.stack([ev.nextline([r], items) for r in runs]).astype(float)  # (runs, items)
    losses = np.array([r["val_loss"] for r in runs])
    correlation = None
    if len(runs) >= 4:
        rho = float(spearmanr(losses, table.mean(axis=1)).statistic)
        draws = []
        for b in range(p.n_boot):
            who = rng.integers(0, len(runs), size=len(runs))
            x, y = losses[who], table[who][:, picks[b]].mean(axis=1)
            if np.ptp(x) > 0 and np.ptp(y) > 0:
                draws.append(spearmanr(x, y).statistic)
        correlation = {"rho": rho, "low": float(np.quantile(draws, 0.025)) if draws else None,
                       "high": float(np.quantile(draws, 0.975)) if draws else None, "runs": len(runs)}
    return {"task": nextline.TASK, "items": len(items), "random": nextline.RANDOM_BASELINE, "recipes": recipes,
            "runs": [{"run_id": r["id"], "val_loss": r["val_loss"], "accuracy": float(a)}
                     for r, a in zip(runs, table.mean(axis=1))],
            "correlation": correlation}


def _standard_table(p: BenchPreset, standard: list[dict], ev: _Evaluations) -> list[dict]:
    rows = [r for r in standard if r["config"]["tags"]["multiple"] == 1]
    return [{"depth": r["config"]["model"]["depth"], "epochs": r["config"]["train"]["epochs"],
             "params": r["summary"]["non_embedding_params"], "select_loss": r["select_loss"],
             "val_loss": r["val_loss"], "run_id": r["id"], "row": r} for r in rows]


def _findings(p: BenchPreset, std: list[dict], chosen: dict, fits: dict, recipes: dict, ens: dict,
              distillation: dict | None, ev: _Evaluations, reference: list[dict],
              default: str = "regularized") -> list[dict]:
    kw = {"n_boot": p.n_boot}
    out = []
    # 1. the standard recipe overfits: val against epochs has an interior minimum, per size
    per_size, u_shaped = [], 0
    for depth in p.sizes:
        mine = sorted((r for r in std if r["depth"] == depth), key=lambda r: r["epochs"])
        if len(mine) < 3:
            continue
        w = ev.windows([r["row"] for r in mine])
        best = int(np.argmin([r["val_loss"] for r in mine]))
        diff = loss_difference(w[-1], w[best], _tokens_per_window(mine[0]["row"]), **kw)
        interior = 0 < best < len(mine) - 1
        u_shaped += interior and (diff["low"] or 0) > 0
        per_size.append({"depth": depth, "best_epochs": mine[best]["epochs"], "interior": interior, **diff})
    largest = per_size[-1] if per_size else {}
    best_by_size = {d: min(r["val_loss"] for r in std if r["depth"] == d) for d in p.sizes}
    sizes = sorted(best_by_size)
    stops = len(sizes) >= 2 and best_by_size[sizes[-1]] > best_by_size[sizes[-2]] - 0.01
    out.append(_finding("1", "the standard recipe overfits", u_shaped >= 2 if len(per_size) >= 2 else None,
                        largest, "nats (val at the most epochs - val at the best epochs, largest size)",
                        "Kim et al.: the standard recipe's loss rises with epochs and parameters at a fixed budget",
                        f"{u_shaped} of {len(per_size)} sizes have an interior minimum over epochs with the rise "
                        f"above its 95% interval; best standard val by size {_fmt(best_by_size)}; the largest size "
                        f"{'does not improve' if stops else 'still improves'} on the next smaller one",
                        per_size=per_size, parameters_stop_improving=stops))
    # 2. the regularized recipe: monotone in parameters, power law with an asymptote below the standard's best
    reg = [chosen[d]["row"]["val_loss"] for d in p.sizes]
    monotone = all(b < a for a, b in zip(reg, reg[1:]))
    w = ev.windows([chosen[d]["row"] for d in p.sizes])
    tpw = _tokens_per_window(chosen[p.sizes[0]]["row"])
    steps = [{"from": a, "to": b, **loss_difference(w[i + 1], w[i], tpw, **kw)}  # larger minus smaller, paired
             for i, (a, b) in enumerate(zip(p.sizes, p.sizes[1:]))]
    std_best = min(best_by_size.values())
    law = fits.get("regularized_params")
    e_reg = _estimate(law, "E") if _identified(law) else {}
    if len(p.sizes) < 3:
        reproduced = None
    elif not monotone or min(reg) >= std_best:
        reproduced = False
    else:  # None when the asymptote is not identified (the fit sits at a bound)
        reproduced = None if e_reg.get("value") is None else e_reg["value"] < std_best
    certified = sum(c["descent"]["certified"] for c in chosen.values())
    out.append(_finding("2", "the regularized recipe scales in parameters below the standard recipe", reproduced,
                        e_reg, "nats (asymptote E of L(N) = E + A·N^-alpha)",
                        "Kim et al.: regularized asymptote 3.43 against the standard 3.75",
                        f"regularized val by size {_fmt(dict(zip(p.sizes, reg)))} ({'monotone' if monotone else 'not monotone'}; "
                        f"each size minus the next smaller, paired: {_fmt_steps(steps)}); "
                        f"standard best {std_best:.4f}; {certified} of {len(chosen)} descents certified",
                        weight_decays=[c["descent"]["best"]["optim.weight_decay"] for c in chosen.values()],
                        size_steps=steps))
    # 3. ensembles: the K-scaling asymptote against the parameter-scaling asymptote
    ks = fits.get("k_scaling")
    e_k = _estimate(ks, "E") if _identified(ks) else {}
    reproduced = None
    if e_k.get("value") is not None:
        reproduced = e_k["value"] < (e_reg.get("value") if e_reg.get("value") is not None else min(reg))
    against = "the regularized asymptote" if e_reg.get("value") is not None else "the best regularized run"
    out.append(_finding("3", "ensembles go below the parameter-scaling asymptote", reproduced, e_k,
                        "nats (asymptote of L(K) at the largest size)",
                        "Kim et al.: ensembles 3.34 against the regularized asymptote 3.43",
                        f"compared with {against}" if ks is None or _identified(ks) else
                        f"the K-scaling asymptote is not identified ({'; '.join(getattr(ks, 'warnings', []))})"))
    # 4. the joint limit
    joint = fits.get("joint")
    e_j = _estimate(joint, "E") if _identified(joint) else {}
    reproduced = None if e_j.get("value") is None else bool(e_j["value"] < min(reg))
    out.append(_finding("4", "the joint limit (K, then N, to infinity)", reproduced, e_j, "nats",
                        "Kim et al.: joint two-step limit 3.17", "ensembles at every size" if p.joint else "not run"))
    # 5. distillation
    out += _distillation_findings(p, ens, distillation, ev, kw)
    # 6. data efficiency over the standard recipe
    eff = {name: r["efficiency"].get("parametric") or {} for name, r in recipes.items() if name != "standard"}
    reg_eff = eff.get("regularized", {})
    edges = [f"{r['multiple']}x ({r['edge']} epochs)" for r in reference if r["edge"]]
    reproduced = None if reg_eff.get("low") is None else reg_eff["low"] > 1
    out.append(_finding("6", "data efficiency over the standard recipe", reproduced, eff.get(default, {}),
                        f"x (parametric multiple of the default recipe, {default})",
                        "Kim et al.: 2.29x regularized, 5.17x joint; Slowrun 10x",
                        "; ".join(f"{n} {_interval(e)}" for n, e in eff.items())
                        + (f"; reference tuned at a grid edge at {', '.join(edges)}" if edges else ""),
                        reference_edges=edges))
    return out


def _distillation_findings(p: BenchPreset, ens: dict, distillation: dict | None, ev: _Evaluations, kw: dict) -> list:
    if distillation is None or p.largest not in ens:
        none = "not run (the preset does not distill)"
        return [_finding(f"5{x}", name, None, {}, "", pub, none) for x, name, pub in DISTILL_FINDINGS]
    rows = ens[p.largest]["rows"]
    members = ev.windows([rows[0], distillation["student"], distillation["self"]])
    prefixes = ev.prefixes(rows)
    chain = ev.prefixes(distillation["chain"])
    tpw = _tokens_per_window(rows[0])
    share = gain_share(members[0], prefixes[-1], members[1], **kw)
    self_gain = loss_difference(members[0], members[2], tpw, **kw)
    chain_gain = loss_difference(prefixes[-1], chain[-1], tpw, **kw)
    k = len(rows)
    return [
        _finding("5a", DISTILL_FINDINGS[0][1], None if share["low"] is None else share["low"] > 0.5, share,
                 f"share of the {k}-member ensemble's gain over one member kept by the student",
                 DISTILL_FINDINGS[0][2], f"student val {distillation['student']['val_loss']:.4f}"),
        _finding("5b", DISTILL_FINDINGS[1][1], None if self_gain["low"] is None else self_gain["low"] > 0, self_gain,
                 "nats (teacher val - self-distilled student val)", DISTILL_FINDINGS[1][2],
                 f"self-distilled val {distillation['self']['val_loss']:.4f}"),
        _finding("5c", DISTILL_FINDINGS[2][1], None if chain_gain["low"] is None else chain_gain["low"] > 0, chain_gain,
                 f"nats (independent {k}-ensemble val - chain {k}-ensemble val)", DISTILL_FINDINGS[2][2],
                 f"alpha {p.distill_alpha}, T {p.distill_temperature}"),
    ]


DISTILL_FINDINGS = (
    ("a", "an ensemble distilled into one student keeps most of its gain", "Kim et al.: 83% of an 8-member ensemble's gain"),
    ("b", "self-distillation helps", "Kim et al.: self-distillation improves a model of the same size"),
    ("c", "chain distillation beats independent members", "Slowrun: chain (alpha 0.5, T 1) took 8 members from 7x to 8x"),
)


def _identified(fit) -> bool:
    """Whether a fit's asymptote means something: fitted, not at a bound (E = 0, alpha at its limits)."""
    if fit is None or isinstance(fit, _Unfitted):
        return False
    return not fit.flags.get("at_bound") and (fit.estimates["E"].value or 0) > 0


def _fmt_steps(steps: list[dict]) -> str:
    return ", ".join(f"{s['to']} - {s['from']}: {s['value']:+.4f} [{s['low']:+.4f}, {s['high']:+.4f}]"
                     if s.get("low") is not None else f"{s['to']} - {s['from']}: {s['value']:+.4f}" for s in steps)


def _finding(fid: str, name: str, reproduced, est: dict, unit: str, published: str, detail: str, **extra) -> dict:
    return {"id": fid, "name": name, "reproduced": None if reproduced is None else bool(reproduced),
            "value": est.get("value"), "low": est.get("low"), "high": est.get("high"), "unit": unit,
            "published": published, "detail": detail, **extra}


def _hygiene(reference: list[dict], findings: list[dict], std: list[dict], chosen: dict, ev: _Evaluations,
             n_boot: int) -> dict:
    """|select - val| on the reference runs, and standard errors of paired val differences: per size, the
    standard recipe's best run against the regularized recipe's (the comparison of two settings the recipes
    rest on, `paired_difference_se` their largest), and finding 1's contrast (an overfit run against the best,
    a difference ten times larger whose per-window spread is larger too)."""
    gaps = [abs(r["row"]["select_loss"] - r["row"]["val_loss"]) for r in reference]
    per_size = []
    for depth, c in chosen.items():
        mine = [r for r in std if r["depth"] == depth]
        if not mine:
            continue
        best = min(mine, key=lambda r: r["val_loss"])["row"]
        w = ev.windows([best, c["row"]])
        diff = loss_difference(w[0], w[1], _tokens_per_window(best), n_boot=n_boot)
        per_size.append({"depth": depth, **diff})
    ses = [d["se"] for d in per_size if d.get("se") is not None]
    overfit = [f.get("se") for f in findings[0].get("per_size", [])] if findings else []
    overfit = [s for s in overfit if s is not None]
    return {"select_val_gap_max": max(gaps), "select_val_gap_mean": float(np.mean(gaps)),
            "paired_difference_se": max(ses) if ses else None, "paired_differences": per_size,
            "overfit_difference_se": max(overfit) if overfit else None}


def _tokens_per_window(row: dict) -> int:
    return int(row["config"]["model"]["seq_len"])


def _fmt(d: dict) -> str:
    return ", ".join(f"{k}: {v:.4f}" for k, v in d.items())


def _interval(e: dict) -> str:
    if not e or e.get("value") is None:
        return "-"
    lo, hi = e.get("low"), e.get("high")
    return f"{e['value']:.3g}x [{'-' if lo is None else f'{lo:.3g}'}, {'inf' if hi is None else f'{hi:.3g}'}]"


def _ensemble_json(e: dict) -> dict:
    return {"member_ids": [r["id"] for r in e["rows"]], "member_val_loss": [m["val_loss"] for m in e["members"]],
            "member_val_bpb": [m["val_bpb"] for m in e["members"]], "prefix_val_loss": e["prefix_val_loss"],
            "prefix_val_bpb": e["prefix_val_bpb"], "member_flops": [r["flops"] for r in e["rows"]]}


def _brief(row: dict) -> dict:
    return {"run_id": row["id"], "val_loss": row["val_loss"], "select_loss": row["select_loss"], "flops": row["flops"]}


def _entry(loss: float, bpb: float, flops: float, run_ids: list[str]) -> dict:
    return {"val_loss": loss, "val_bpb": bpb, "flops": flops, "run_ids": run_ids, "efficiency": {}}


def _knobs(row: dict) -> dict:
    c = row["config"]
    return {"depth": c["model"]["depth"], "architecture": c["tags"].get("stack", "baseline"),
            "epochs": c["train"]["epochs"], "weight_decay": c["optim"]["weight_decay"],
            "dropout": c["model"]["dropout"], "lr": c["optim"]["lr"], "seed": c["train"]["seed"]}


def _quietly(fn, *args, **kwargs):
    """Run a fit with its FitWarnings recorded on the Fit (not printed); an `_Unfitted` when it cannot be fitted."""
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
