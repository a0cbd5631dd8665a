"""Bench presets: the budget, the model family and every run of the pipeline, as data."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from scarce.errors import UserError
from scarce.recipes.population import chain_overrides

BENCH_RECIPES = {
    "ensemble": "the regularized recipe (certified descent per size), then an ensemble of K seeds; joint limit "
                "and distillation where the preset asks (the default)",
    "regularized": "the regularized recipe alone, one model per size",
}
DEFAULT_RECIPE = "ensemble"
STANDARD_WD = 0.1
ONE_EVALUATION = 10**9
POPULATION = {"optim.final_lr_frac": 0.08, "optim.wd_schedule": "anti", "optim.wd_floor": 0.7}
"""The population stage's trajectories beside the cyclic schedule: NanoGPT Slowrun's unlimited record's rate floor and
weight decay moving against the rate."""
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
    piece_bytes: int = 0
    """prepare's piece size: train takes its documents cut at line ends into pieces of about this many bytes, in
    the pieces' hash order, so the budget and each multiple of it sample many documents instead of the few whole
    ones that come first; 0 takes whole documents."""
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
    reference_growth: int = 0
    """Times the reference grid may double its most epochs at a size of data whose run best on select trained the
    most epochs tried (`scarce.bench.stages.grow_reference`); 0 never grows it, and such an edge is a warning with
    how far it could move the headline (bench.json `warnings`)."""
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
    member_epochs_factor: float = 1.0
    member_wd_factor: float = 1.0
    """The ensemble recipe's member heuristic: members train the chosen setting's epochs and weight decay times
    these. The recipe's defaults are Kim et al.'s 2.0 and 0.5; the bench's presets keep the chosen setting itself
    (1.0, 1.0): at cpu-small's budget Kim et al.'s members made 4-member ensembles 0.088 nats worse on each of 3 seeds
    (benchmarks/results/member_recipe_cpu.md)."""
    joint: bool = False
    """Ensembles at every size (the two-step joint limit) instead of the largest only."""
    distill: bool = False
    """Distillation at the largest size: ensemble to student, self-distillation, chain."""
    distill_alpha: float = 0.5
    distill_temperature: float = 1.0
    """Distillation settings (NanoGPT Slowrun's chain: alpha 0.5, T 1)."""
    stack: bool = False
    """Also try the `slowrun` architecture stack (no looping) at the chosen regularized setting."""
    synthetic: tuple[int, ...] = ()
    """Students on real plus generated text (`scarce.recipes.synthetic`): generated tokens as multiples of the
    budget, one student of the largest size's chosen setting at each, written by the largest size's ensemble;
    () skips the stage. Three or more multiples fit the student's loss against generated tokens."""
    synthetic_mode: str = "unconditioned"
    """How the teachers write (`scarce.synth`): unconditioned (Kim et al., Section 5), conditioned or megadoc."""
    synthetic_fracs: tuple[float, ...] = (0.9,)
    """Shares of synthetic batches tried on select at the middle multiple (Kim et al.: 0.9 for an ensemble teacher)."""
    synthetic_self_frac: float = 0.75
    """Self-distillation through generated text: one member writes the first multiple, its student trains on
    this share of it (Kim et al.: real:synthetic 25:75); 0 skips."""
    synthetic_members: int = 1
    """Students (seeds) at the largest multiple; more than one are also evaluated as an ensemble."""
    synthetic_passes: float = 2.0
    """A student's horizon: passes over its generated text at its share (never fewer tokens than its teachers)."""
    population: int = 0
    """Trajectories of the population stage (`scarce.recipes.population`): at the largest size and its chosen
    regularized setting, cyclic runs whose cycle-end snapshots are a population, together training as many epochs as
    the ensemble's members (matched compute, a chain's teacher forwards excepted), measured against that ensemble
    (finding 8) and as recipes of their own; 0 skips the stage."""
    population_cycle_epochs: float = 2.0
    """Epochs per cycle of the trajectories (the unlimited record: 2)."""
    population_overrides: dict = field(default_factory=lambda: dict(POPULATION))
    """What else the trajectories set (default the unlimited record's rate floor and weight decay against the rate;
    add its chain and perturbation here: objective.kind=chain, optim.perturb, ...)."""
    n_boot: int = 1000
    """Bootstrap refits of every fit and paired comparison."""
    downstream_items: int = 500
    """Items of the embedded downstream task (`scarce_nextline`, from the 1x store's val split) each recipe,
    every run of the standard grid and each size's chosen regularized run are scored on; 0 leaves the
    downstream column out."""
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
        if self.synthetic and (min(self.synthetic) < 1 or self.members < 2 or not self.synthetic_fracs):
            raise ValueError("synthetic: multiples >= 1, written by an ensemble (members >= 2), with a share to try")
        if self.population < 0 or self.population_cycle_epochs <= 0:
            raise ValueError("population: trajectories >= 0 (0 skips), cycles of > 0 epochs")
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
        weight_decays=(0.1, 0.8, 3.2), epochs=(4, 8), max_rounds=1, members=3, n_boot=300, smoke=True,
        synthetic=(1, 2, 4)),
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
        members=4, joint=True, distill=True, stack=True,
        # students on generated text (benchmarks/results/synth_students_cpu.md, cpu-small's budget: the student fell
        # from 3.866 at 1x to 3.694 at 16x; at 4x share 0.5 beat 0.25, 0.75 and 0.9); ~45 min more, not yet run here
        synthetic=(1, 4, 16), synthetic_fracs=(0.25, 0.5, 0.75), synthetic_members=2),
    # Continued pretraining (Kim et al.'s CPT setting in miniature): depth 4 pretrained on the stdlib's library
    # code (1.5M tokens), continued on a 100k-token budget of its test suites, the two domains one tokenizer.
    "cpu-cpt": BenchPreset(
        "cpu-cpt", budget_tokens=100_000, multiples=(1, 2, 4, 8), corpus="stdlib:tests", vocab_size=512,
        select_tokens=100_000, val_tokens=100_000, heldout_window=384, overrides=CPU_FAMILY, sizes=(4,),
        lr=1e-3, standard_epochs=(1, 2, 4, 8), reference_epochs={2: (1, 2, 4, 8), 4: (1, 2, 4), 8: (1, 2)},
        lrs=(5e-4, 1e-3, 2e-3), weight_decays=(0.4, 1.6, 3.2, 6.4), epochs=(2, 4, 8, 16),
        regularized_start={"optim.lr": 1e-3, "optim.weight_decay": 1.6, "train.epochs": 4}, max_rounds=2,
        members=4, pretrain_corpus="stdlib:library", pretrain_tokens=1_500_000, pretrain_epochs=1.0),
    # The whole bench on one GPU in minutes, on data every GPU machine has: the stdlib of a minimal Python image
    # holds ~3M tokens (~570 files), so the budget is 500k tokens (5x the CPU presets') with the reference to 4x
    # (2M) and 300k held out; models of depth 4, 6, 8 at width 64 x depth (3.1M-25M non-embedding parameters,
    # 4-32x the CPU presets'). Sized from gpu_check_h200.md's rates (not yet run on a GPU): ~150M token-passes at
    # ~2M tokens/s over several workers per GPU. Findings 1-6 with distillation (no synthetic stage: generation
    # would take most of the minutes).
    "gpu-mini": BenchPreset(
        "gpu-mini", budget_tokens=500_000, multiples=(1, 2, 4), vocab_size=2048, select_tokens=100_000,
        val_tokens=200_000, heldout_window=512, tokenizer_bytes=4_000_000,
        overrides={"model.aspect_ratio": 64, "model.head_dim": 64, "model.seq_len": 256, "train.batch_size": 32,
                   "train.log_every": 1000, "train.compile": False},
        sizes=(4, 6, 8), lr=2e-3, standard_epochs=(2, 4, 8, 16), reference_epochs={2: (2, 4, 8), 4: (2, 4, 8)},
        lrs=(1e-3, 2e-3), weight_decays=(0.8, 3.2, 6.4), epochs=(4, 8, 16),
        regularized_start={"optim.lr": 2e-3, "optim.weight_decay": 3.2, "train.epochs": 8}, max_rounds=2,
        members=4, joint=True, distill=True),
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

# Warmup-stable-decay (Slowrun's records train on WSD): no warmup, the last 20% of the steps decaying to the run
# preset's floor. Runs of one setting then share their stable phase (`scarce.runs.branch`), so each epoch grid
# trains its longest run once and the others only their decay. The CPU presets train on WSD since it was checked
# against cosine on cpu-small over three samples of the corpus (benchmarks/results/bench_cpu_small_samples.md:
# findings 1, 2, 3 and 6 hold under both on every sample; the standard recipe the same, the regularized one and
# the ensemble better; the reference's 4x and 8x pick 8 epochs with 16 tried). `-cosine` keeps the schedule of
# the results committed before (their commands and run ids); `-wsd` names the same presets as before the switch.
WSD = {"optim.schedule": "wsd", "optim.warmup_frac": 0.0, "optim.warmdown_frac": 0.2}
for _name in ("cpu-tiny", "cpu-small", "cpu-full"):
    _p = BENCH_PRESETS[_name]
    BENCH_PRESETS[f"{_name}-cosine"] = replace(_p, name=f"{_name}-cosine")
    BENCH_PRESETS[_name] = replace(_p, overrides={**_p.overrides, **WSD})
    BENCH_PRESETS[f"{_name}-wsd"] = replace(_p, name=f"{_name}-wsd", overrides={**_p.overrides, **WSD})

# cpu-small with cpu-full's synthetic stage (students on what the teachers write): the four teachers write 1x, 4x
# and 16x the budget, the share is tuned on select at 4x, two students at 16x (their ensemble, and the teachers'
# ensemble with them added). Its other runs are cpu-small's, so the two share a run store.
for _name in ("cpu-small", "cpu-small-cosine"):
    BENCH_PRESETS[_name.replace("cpu-small", "cpu-small-synth")] = replace(
        BENCH_PRESETS[_name], name=_name.replace("cpu-small", "cpu-small-synth"), synthetic=(1, 4, 16),
        synthetic_fracs=(0.25, 0.5, 0.75), synthetic_members=2)

# Train in pieces: a 100k-token budget of whole stdlib files is 7 to 23 files over three data seeds, one of them a
# third of the tokens, so which files came first moved the results and each doubling of the reference added whole new
# modules. Cut into pieces of ~2 kB (a function or a class, ~7 contexts of 128 tokens) in the pieces' hash order, the
# budget spans 82-89 files, none above 7% of it, and 800k spans ~300 (benchmarks/results/budget_spread_cpu.md);
# select and val are unchanged. `-whole` keeps whole documents: the presets as they were, whose stores, run configs
# and run ids the results committed before were measured with (`-cosine` and `-wsd` keep whole documents too).
PIECE_BYTES = 2048
for _name in ("cpu-small", "cpu-full", "cpu-small-synth"):
    BENCH_PRESETS[f"{_name}-whole"] = replace(BENCH_PRESETS[_name], name=f"{_name}-whole")
    BENCH_PRESETS[_name] = replace(BENCH_PRESETS[_name], piece_bytes=PIECE_BYTES)

# cpu-full past the ensemble: 8 members at every size (the joint limit's K-law from K = 1..8) and the population
# stage, 2 trajectories under the unlimited record's primitives as measured at cpu-small's budget
# (benchmarks/results/population_cpu.md: cycles of 2 epochs, chain alpha 0.45 T 1.2 from cycle 2, perturbation
# 0.25 to 0.05), whose epochs together are the 8 members' at the largest size. That measurement's lowest val, the
# population and the ensemble under one prior, is the stage's recipe `population+ensemble-prior`. Without cpu-full's
# synthetic stage (measured by cpu-full and cpu-small-synth). Estimated, not yet run: cpu-full's stages but the
# synthetic took ~40 min from a fresh store (bench_cpu_full.md), 4 more members per size ~6 min, the trajectories
# (128 epochs of the chosen depth-4 setting, x1.3 for the chain's teacher forwards, x2 per token if the slowrun stack
# is chosen there as it was in cpu-full) ~55 min on 2 workers, their 64 snapshots' passes over select and val
# ~25 min: ~2-2.5 h on 2 cores.
RECORD_POPULATION = {**POPULATION, **chain_overrides(0.45, 1.2, 2), "optim.perturb": 0.25, "optim.perturb_final": 0.05}
BENCH_PRESETS["cpu-full-population"] = replace(
    BENCH_PRESETS["cpu-full"], name="cpu-full-population", members=8, population=2,
    population_overrides=RECORD_POPULATION, synthetic=(), synthetic_fracs=(0.9,), synthetic_members=1)


def get_bench_preset(preset: str | BenchPreset) -> BenchPreset:
    if isinstance(preset, BenchPreset):
        return preset
    if preset not in BENCH_PRESETS:
        raise UserError(f"unknown bench preset {preset!r} (known: {', '.join(BENCH_PRESETS)})")
    return BENCH_PRESETS[preset]
