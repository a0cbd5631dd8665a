"""Typed run configuration and named presets.

A run is described by one `RunConfig` (data, model, optimiser, training loop). Every field is
documented under its definition and checked in `__post_init__`, so a bad value fails early with a
message naming the field. Presets are plain functions returning a `RunConfig`; a variant calls its
base preset and replaces fields. The full resolved config is saved beside every checkpoint, and
the hash of its semantic part names the run (`run_id`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

from scarce.errors import UserError


def _check(cond: bool, name: str, message: str) -> None:
    if not cond:
        raise ValueError(f"{name}: {message}")


@dataclass
class ModelConfig:
    depth: int = 4
    """Number of transformer blocks: the size dial. Width and heads derive from it."""
    aspect_ratio: int = 32
    """Width per layer of depth: width = depth * aspect_ratio, rounded up to a multiple of head_dim."""
    head_dim: int = 32
    """Dimension of each attention head; heads = width // head_dim."""
    width: int = 0
    """Model width; 0 derives it from depth and aspect_ratio."""
    vocab_size: int = 0
    """Vocabulary size; 0 takes it from the token store."""
    seq_len: int = 256
    """Context length in tokens (the training window)."""
    tie_embeddings: bool = True
    """Share the token embedding and the output head."""
    mlp_ratio: float = 4.0
    """Hidden size of the MLP as a multiple of width."""
    dropout: float = 0.0
    """Dropout on the attention and MLP outputs before they join the residual stream."""
    attn_dropout: float = 0.0
    """Dropout on the attention probabilities (off by default: on CPU a non-zero value makes
    scaled_dot_product_attention take its unfused path, which holds the T x T matrix)."""
    rope_base: float = 10000.0
    """Base of the rotary position embedding frequencies."""
    # -- data-efficiency knobs (docs/architecture.md); each off by default ------------------
    mlp: str = "relu2"
    """MLP kind: 'relu2' (ReLU squared) or 'swiglu' (SiLU-gated, three matrices)."""
    swiglu_hidden: int = 0
    """Hidden size of the SwiGLU MLP; 0 rounds 8/3 x width up to a multiple of 256."""
    value_embed: str = ""
    """Layers whose attention values get a gated projection of the input embedding x0:
    '' (none), 'all', 'alt' (alternating, the last layer included) or indices like '0,2'."""
    unet_skips: bool = False
    """Add the outputs of the first half's blocks into the mirrored blocks of the second half,
    each with a learned scalar weight (zero at init)."""
    resid_lambdas: bool = False
    """Before each block, x = lambda_resid * x + lambda_x0 * x0 with learned scalars (1 and 0 at init)."""
    attn_gate: bool = False
    """Per-head output gate of attention: 2 * sigmoid of a zero-initialised linear map of the first
    few input channels (1 at init)."""
    xsa: bool = False
    """Exclusive self attention: remove from each head's output its component along the token's own value."""
    xsa_learn: bool = False
    """Learnable XSA (NanoGPT Slowrun's tiny track): the removed component scaled per layer and head by tanh(alpha),
    alpha learned from 0, so the model starts as plain attention; needs xsa."""
    rotary_frac: float = 1.0
    """Fraction of the rotary frequency pairs that rotate; the rest stay position-free."""
    key_offset: str = ""
    """Layers (same syntax as value_embed) whose keys' low-frequency half is shifted forward one position."""
    qk_norm: bool = False
    """RMS-normalise queries and keys per head before the rotary embedding."""
    softcap: float = 0.0
    """Soft-cap the output logits at c * tanh(logits / c); 0 disables."""
    window_pattern: str = ""
    """Per-layer attention pattern cycled over the layers, S = sliding window, L = full (e.g. 'SSSL');
    the last layer is always full; '' makes every layer full."""
    short_window: int = 0
    """Width in tokens of the S layers' window; 0 uses seq_len // 2."""
    loop_layers: str = ""
    """Looped transformer: '' (off), 'auto' (from depth // 2 to ~0.7 x depth) or 'a:b', the layer range
    [a, b) replayed loop_extra more times; the last layer is never looped."""
    loop_extra: int = 1
    """Extra passes through loop_layers once looping is on."""
    loop_from: float = 0.5
    """Fraction of training after which looping switches on (a pure function of the step)."""
    loop_backprop: str = "all"
    """Which passes through loop_layers training backpropagates through: 'all', or 'last' (truncated backprop, NanoGPT
    Slowrun's tiny-track recurrence: the earlier passes run without gradient and the last pass starts from their
    detached output). 'last' needs a loop from layer 0 (loop_layers '0:b'): layers before the loop would get no
    gradient; the embedding then learns only through x0 (resid_lambdas, value_embed) and a tied head."""
    mtp_weight: float = 0.0
    """Weight of the multi-token-prediction auxiliary loss (predict token t+2; training only); 0 disables."""
    drop_path: float = 0.0
    """Stochastic depth (Huang et al. 2016; NanoGPT Slowrun: 0.05): in training, block i of depth L is skipped
    for each sequence with probability drop_path * i / (L - 1), its update rescaled by 1 / keep when kept; never
    at evaluation; 0 disables."""
    init: str = "gpt2"
    """Initial weights: 'gpt2' (N(0, 0.02), residual output projections scaled by 1/sqrt(2 x depth)) or 'record'
    (NanoGPT Slowrun's: the blocks' output projections N(0, 1/sqrt(width)), their other matrices uniform in
    +-sqrt(3)/sqrt(width); embedding and head as 'gpt2')."""
    iha: str = ""
    """Interleaved Head Attention (arXiv 2602.21371; NanoGPT Slowrun's record line 17: every layer): in these layers
    (same syntax as value_embed) each head's query, key and value is a learned mix of every head's, one matrix per
    projection starting at the identity (plain attention at init)."""
    # -- the shapes of other families (GPT-2, Llama), for models started from their weights ---------
    norm: str = "rms"
    """Normalisation: 'rms' (RMSNorm) or 'layer' (LayerNorm, GPT-2)."""
    norm_affine: bool = False
    """Learned per-channel gain of every norm (and bias, for LayerNorm); off: the parameter-free RMSNorm."""
    norm_eps: float = 0.0
    """Epsilon of the norms; 0: the dtype's machine epsilon for RMSNorm, 1e-5 for LayerNorm."""
    bias: bool = False
    """Biases on the attention and MLP linear maps (GPT-2; Llama with attention_bias)."""
    position: str = "rotary"
    """Positions: 'rotary' (RoPE on queries and keys) or 'learned' (an absolute embedding added to the input, GPT-2)."""
    kv_heads: int = 0
    """Key/value heads (grouped-query attention, Llama); 0: one per query head."""
    rope_scaling: str = ""
    """Rotary frequency scaling: '' (none) or 'llama3:FACTOR:LOW:HIGH:ORIGINAL_CONTEXT' (Llama 3.1+)."""

    def __post_init__(self):
        _check(self.depth >= 1, "model.depth", "must be >= 1")
        _check(self.aspect_ratio >= 1, "model.aspect_ratio", "must be >= 1")
        _check(self.head_dim >= 2 and self.head_dim % 2 == 0, "model.head_dim", "must be an even number >= 2")
        _check(self.width >= 0, "model.width", "must be >= 0 (0 derives it from depth)")
        _check(self.width == 0 or self.width % self.head_dim == 0, "model.width", "must be a multiple of head_dim")
        _check(self.vocab_size >= 0, "model.vocab_size", "must be >= 0 (0 takes it from the data)")
        _check(self.seq_len >= 2, "model.seq_len", "must be >= 2")
        _check(self.mlp_ratio > 0, "model.mlp_ratio", "must be > 0")
        _check(0.0 <= self.dropout < 1.0, "model.dropout", "must be in [0, 1)")
        _check(0.0 <= self.attn_dropout < 1.0, "model.attn_dropout", "must be in [0, 1)")
        _check(self.rope_base > 1, "model.rope_base", "must be > 1")
        _check(self.mlp in ("relu2", "swiglu", "gelu"), "model.mlp", "must be relu2, swiglu or gelu")
        _check(self.swiglu_hidden >= 0, "model.swiglu_hidden", "must be >= 0 (0 derives it from width)")
        for name in ("value_embed", "key_offset", "iha"):
            layer_set(getattr(self, name), self.depth, f"model.{name}")
        _check(0.0 < self.rotary_frac <= 1.0, "model.rotary_frac", "must be in (0, 1]")
        _check(self.softcap >= 0, "model.softcap", "must be >= 0 (0 disables)")
        _check(set(self.window_pattern) <= {"S", "L"}, "model.window_pattern", "must be made of S and L, e.g. SSSL")
        _check(self.short_window >= 0, "model.short_window", "must be >= 0 (0 uses seq_len // 2)")
        _check(self.loop_extra >= 1, "model.loop_extra", "must be >= 1")
        _check(0.0 <= self.loop_from <= 1.0, "model.loop_from", "must be in [0, 1]")
        _ = self.loop_range  # validates loop_layers
        _check(self.loop_backprop in ("all", "last"), "model.loop_backprop", "must be all or last")
        if self.loop_backprop == "last":
            _check(self.loop_range is not None, "model.loop_backprop",
                   "'last' truncates backprop through the looped passes: set model.loop_layers (e.g. 0:3)")
            _check(self.loop_range[0] == 0, "model.loop_backprop", f"'last' needs a loop from layer 0 "
                   f"(model.loop_layers=0:b, got {self.loop_layers!r}): layers before the loop would get no gradient")
        _check(self.xsa or not self.xsa_learn, "model.xsa_learn", "scales exclusive self attention: set model.xsa")
        _check(self.mtp_weight >= 0, "model.mtp_weight", "must be >= 0 (0 disables)")
        _check(0.0 <= self.drop_path < 1.0, "model.drop_path", "must be in [0, 1)")
        _check(self.init in INITS, "model.init", "must be gpt2 or record")
        _check(self.norm in ("rms", "layer"), "model.norm", "must be rms or layer")
        _check(self.norm_eps >= 0, "model.norm_eps", "must be >= 0 (0: the default)")
        _check(self.position in ("rotary", "learned"), "model.position", "must be rotary or learned")
        _check(self.kv_heads >= 0 and (self.kv_heads == 0 or self.n_heads % self.kv_heads == 0), "model.kv_heads",
               f"must divide the {self.n_heads} query heads (0: one per query head)")
        _ = self.rope_factors  # validates rope_scaling

    @property
    def d_model(self) -> int:
        if self.width:
            return self.width
        return math.ceil(self.depth * self.aspect_ratio / self.head_dim) * self.head_dim

    @property
    def n_heads(self) -> int:
        return self.d_model // self.head_dim

    @property
    def mlp_hidden(self) -> int:
        if self.mlp == "swiglu":
            return self.swiglu_hidden or 256 * math.ceil(8 * self.d_model / 3 / 256)
        return int(round(self.mlp_ratio * self.d_model))

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads or self.n_heads

    @property
    def rope_factors(self) -> tuple[float, float, float, int] | None:
        """(factor, low_freq_factor, high_freq_factor, original context) of rope_scaling, or None."""
        if not self.rope_scaling:
            return None
        kind, _, rest = self.rope_scaling.partition(":")
        try:
            factor, low, high, original = (float(x) for x in rest.split(":"))
        except ValueError:  # not four numbers
            factor = low = high = original = 0.0
        _check(kind == "llama3" and factor >= 1 and 0 < low < high and original >= 1, "model.rope_scaling",
               f"must be '' or llama3:FACTOR:LOW:HIGH:ORIGINAL_CONTEXT (e.g. llama3:32:1:4:8192), "
               f"got {self.rope_scaling!r}")
        return factor, low, high, int(original)

    @property
    def loop_range(self) -> tuple[int, int] | None:
        """The looped layer range [a, b), or None when looping is off."""
        spec = self.loop_layers
        if not spec:
            return None
        if spec == "auto":
            a = max(0, min(self.depth // 2, self.depth - 2))
            b = max(a + 1, min(round(0.7 * self.depth), self.depth - 1))
        else:
            lo, sep, hi = spec.partition(":")
            _check(sep == ":" and lo.strip().isdigit() and hi.strip().isdigit(), "model.loop_layers",
                   f"must be '', 'auto' or 'a:b' with layer indices, got {spec!r}")
            a, b = int(lo), int(hi)
        _check(0 <= a < b <= self.depth - 1, "model.loop_layers",
               f"range [{a}, {b}) must be non-empty and leave the last layer unlooped (depth {self.depth})")
        return a, b

    def layers(self, name: str) -> set[int]:
        """The layer indices named by a layer-set field (value_embed, key_offset, iha)."""
        return layer_set(getattr(self, name), self.depth, f"model.{name}")


def layer_set(spec: str, depth: int, name: str) -> set[int]:
    """Parse a layer selection: '' (none), 'all', 'alt' (alternating, last layer included) or '0,2,5'."""
    if spec in ("", "none"):
        return set()
    if spec == "all":
        return set(range(depth))
    if spec == "alt":
        return {i for i in range(depth) if i % 2 == (depth - 1) % 2}
    parts = [p.strip() for p in spec.split(",")]
    _check(all(p.isdigit() for p in parts), name, f"must be '', 'all', 'alt' or layer indices like '0,2', got {spec!r}")
    layers = {int(p) for p in parts}
    _check(max(layers) < depth, name, f"layer {max(layers)} does not exist (depth {depth})")
    return layers


@dataclass
class OptimConfig:
    lr: float = 3e-3
    """Peak learning rate of the matrices (and of every group without its own)."""
    embed_lr: float = 0.0
    """Peak learning rate of the embedding and head; 0 uses lr."""
    weight_decay: float = 0.1
    """Decoupled (AdamW) weight decay on matrices. Fixed-data recipes use 10-30x the usual 0.1."""
    decay_embeddings: bool = False
    """Also decay the embedding (and tied head). Norms, scalars and biases are never decayed."""
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0 disables clipping."""
    schedule: str = "cosine"
    """Learning-rate schedule: 'cosine' (warmup, cosine to final_lr_frac), 'wsd' (warmup, stable, linear
    warmdown over the last warmdown_frac), 'constant' (warmup then flat) or 'cyclic' (warmup, then cycles of
    cycle_epochs or cycle_steps, each falling from the peak to final_lr_frac: SGDR's warm restarts, the schedule of
    snapshot ensembles and hyper-epoch populations). A cyclic run keeps its weights at every cycle end under
    checkpoints/snapshots/: the members of its population."""
    warmup_frac: float = 0.05
    """Fraction of the steps spent in linear warmup."""
    final_lr_frac: float = 0.1
    """Learning rate at the end, as a fraction of the peak (cosine floor; wsd end point)."""
    warmdown_frac: float = 0.2
    """Fraction of the steps in the final linear decay of 'wsd'."""
    warmdown_power: float = 1.0
    """Shape of the warmdown of 'wsd': the rate above its floor is (the share of the warmdown left) ** power; 1 is
    linear, 0.5 the square root (NanoGPT Slowrun's record 20: higher for longer)."""
    swa_epochs: int = 0
    """SWA cycles (NanoGPT Slowrun's record line 13: 3): in each of the last this many epochs the learning rate makes
    one cosine cycle from the schedule's own rate down to swa_floor, and the weights at each of those epochs' ends
    are kept under checkpoints/snapshots/ (the members to average); 0 disables. Not with schedule 'cyclic'."""
    swa_floor: float = 0.05
    """The learning-rate floor, as a fraction of the peak, that each SWA cycle ends on (the record: 0.05)."""
    cycle_epochs: float = 0.0
    """Length of one cycle of schedule 'cyclic' in epochs (NanoGPT Slowrun's unlimited record: 2)."""
    cycle_steps: int = 0
    """Length of one cycle of schedule 'cyclic' in optimizer steps; set this or cycle_epochs."""
    cycle_shape: str = "cosine"
    """How the learning rate falls inside a cycle: 'cosine' or 'linear', reaching final_lr_frac on its last step."""
    perturb: float = 0.0
    """Schedule 'cyclic': at each cycle boundary after the first, add Gaussian noise of this fraction of each weight
    matrix's std (matrices, embeddings and head), seeded by (train.seed, cycle), so the trajectory leaves the basin it
    settled in; 0 disables."""
    perturb_final: float = 0.0
    """The perturbation's scale at the last boundary; it moves linearly from `perturb` at the first (the unlimited
    record: 0.25 to 0.05)."""
    # -- data-efficiency knobs (docs/architecture.md); each off by default ------------------
    optimizer: str = "adamw"
    """'adamw' for everything, or 'muon': Muon for the 2-D hidden matrices, AdamW for embeddings,
    head, gates and scalars."""
    muon_lr: float = 0.02
    """Peak learning rate of the Muon matrices (optimizer='muon')."""
    muon_momentum: float = 0.95
    """Nesterov momentum of Muon."""
    muon_momentum_warmup: int = 0
    """Steps over which Muon's momentum rises linearly from muon_momentum_start to muon_momentum (NanoGPT Slowrun's
    record line 18: 300); 0 keeps it at muon_momentum throughout."""
    muon_momentum_start: float = 0.85
    """Muon's momentum at step 0 when muon_momentum_warmup is set (the record: 0.85)."""
    muon_orth: str = "newton-schulz"
    """How Muon orthogonalises its update: 'newton-schulz' (Keller Jordan's quintic, five times) or 'polar-express'
    (Amsel et al. 2025: a minimax-optimal quintic per iteration; the record's line 18)."""
    muon_row_norm: bool = False
    """MuonEq-R (the record's line 18): normalise every row of the momentum to unit norm before orthogonalising."""
    scalar_lr: float = 0.0
    """Peak learning rate of scalars, norms and gates; 0 uses lr."""
    cautious_wd: bool = False
    """Cautious weight decay: decay only the coordinates where the update and the weight agree in sign."""
    wd_schedule: str = "constant"
    """Weight-decay multiplier over training: 'constant', 'lr' (follows the learning-rate schedule), 'cosine'
    (from 1 to 0 over the run), 'anti' (moves against the learning rate: wd_floor at the peak rate, 1 at the
    final_lr_frac floor; q0's anti-correlated schedule) or 'record' (NanoGPT Slowrun's record line 20: 1 for the
    first 40% of training, linearly down to 0.65 at the start of the SWA epochs (at the end without them), then
    from 0.65 up to 1.5 over each SWA epoch, against its falling learning rate)."""
    wd_floor: float = 1.0
    """The weight-decay multiplier of wd_schedule 'anti' at the peak learning rate (the unlimited record: 0.7)."""
    ema_decay: float = 0.0
    """Decay of an exponential moving average of the weights (float32); 0 disables. At the end the blend
    of EMA and last weights with the lowest select loss is kept."""
    ema_start: float = 0.0
    """Fraction of training after which the EMA starts (it is a copy of the weights at that step)."""
    ema_every: int = 1
    """Steps between EMA updates."""
    avg_last: int = 0
    """Average of the weights at the last k snapshots (LAWA), the alternative to the EMA; 0 disables.
    At the end the blend of that average and the last weights with the lowest select loss is kept."""
    avg_every: int = 0
    """Steps between the snapshots of avg_last; 0 takes them at the checkpoints (train.eval_every)."""

    def __post_init__(self):
        _check(self.lr > 0, "optim.lr", "must be > 0")
        _check(self.embed_lr >= 0, "optim.embed_lr", "must be >= 0")
        _check(0 <= self.weight_decay <= 100, "optim.weight_decay", "must be in [0, 100]")
        _check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "optim.beta1/beta2", "must be in [0, 1)")
        _check(self.eps > 0, "optim.eps", "must be > 0")
        _check(self.grad_clip >= 0, "optim.grad_clip", "must be >= 0")
        _check(self.schedule in SCHEDULES, "optim.schedule", "must be cosine, wsd, constant or cyclic")
        self.check_cycles()
        _check(0 <= self.warmup_frac < 1, "optim.warmup_frac", "must be in [0, 1)")
        _check(0 <= self.final_lr_frac <= 1, "optim.final_lr_frac", "must be in [0, 1]")
        _check(0 <= self.warmdown_frac <= 1, "optim.warmdown_frac", "must be in [0, 1]")
        _check(0 < self.warmdown_power <= 10, "optim.warmdown_power", "must be in (0, 10]")
        _check(self.swa_epochs >= 0, "optim.swa_epochs", "must be >= 0 (0 disables)")
        _check(not self.swa_epochs or self.schedule != "cyclic", "optim.swa_epochs",
               "cycles the last epochs of a schedule: not with schedule cyclic, which cycles throughout")
        _check(0 < self.swa_floor <= 1, "optim.swa_floor", "must be in (0, 1]")
        _check(self.optimizer in ("adamw", "muon"), "optim.optimizer", "must be adamw or muon")
        _check(self.muon_lr > 0, "optim.muon_lr", "must be > 0")
        _check(0 <= self.muon_momentum < 1, "optim.muon_momentum", "must be in [0, 1)")
        _check(self.muon_momentum_warmup >= 0, "optim.muon_momentum_warmup", "must be >= 0 (0 disables)")
        _check(0 <= self.muon_momentum_start < 1, "optim.muon_momentum_start", "must be in [0, 1)")
        _check(self.muon_orth in MUON_ORTHS, "optim.muon_orth", "must be newton-schulz or polar-express")
        muon_knobs = self.muon_momentum_warmup or self.muon_row_norm or self.muon_orth != "newton-schulz"
        _check(self.optimizer == "muon" or not muon_knobs, "optim.muon_orth/muon_row_norm/muon_momentum_warmup",
               "shape Muon's update: set optim.optimizer=muon")
        _check(self.scalar_lr >= 0, "optim.scalar_lr", "must be >= 0 (0 uses lr)")
        _check(self.wd_schedule in WD_SCHEDULES, "optim.wd_schedule", "must be constant, lr, cosine, anti or record")
        _check(0 < self.wd_floor <= 1, "optim.wd_floor", "must be in (0, 1]")
        _check(0 <= self.ema_decay < 1, "optim.ema_decay", "must be in [0, 1) (0 disables)")
        _check(0 <= self.ema_start < 1, "optim.ema_start", "must be in [0, 1)")
        _check(self.ema_every >= 1, "optim.ema_every", "must be >= 1")
        _check(self.avg_last >= 0, "optim.avg_last", "must be >= 0 (0 disables)")
        _check(self.avg_every >= 0, "optim.avg_every", "must be >= 0 (0 = at the checkpoints)")
        _check(not (self.ema_decay and self.avg_last), "optim.avg_last", "cannot be combined with optim.ema_decay")

    def check_cycles(self) -> None:
        """The cycle fields: set exactly where the schedule is cyclic, with a floor in (0, 1]."""
        _check(self.cycle_epochs >= 0 and self.cycle_steps >= 0, "optim.cycle_epochs/cycle_steps", "must be >= 0")
        _check(self.cycle_shape in ("cosine", "linear"), "optim.cycle_shape", "must be cosine or linear")
        _check(0 <= self.perturb_final and 0 <= self.perturb <= 10, "optim.perturb/perturb_final",
               "must be in [0, 10] (fractions of each matrix's std)")
        cycles = bool(self.cycle_epochs) + bool(self.cycle_steps)
        if self.schedule != "cyclic":
            _check(not cycles, "optim.cycle_epochs/cycle_steps", "only schedule cyclic has cycles")
            _check(not self.perturb and not self.perturb_final, "optim.perturb",
                   "perturbs at cycle boundaries: only schedule cyclic has them")
            return
        _check(cycles == 1, "optim.cycle_epochs/cycle_steps", "schedule cyclic needs exactly one cycle length")
        _check(0 < self.final_lr_frac <= 1, "optim.final_lr_frac", "is the floor of each cycle: must be in (0, 1]")


@dataclass
class TrainConfig:
    epochs: float = 0.0
    """Horizon in passes over the train split (fractions allowed). Exactly one horizon may be set;
    with none, the horizon is tokens_per_param_default x parameters (the size dial's default)."""
    tokens: int = 0
    """Horizon in training tokens."""
    tokens_per_param: float = 0.0
    """Horizon as a tokens:params ratio (Chinchilla: ~20)."""
    batch_size: int = 16
    """Sequences per micro-batch (per process)."""
    grad_accum: int = 1
    """Micro-batches per optimiser step."""
    seed: int = 0
    """Seeds the initialisation, the data order and dropout."""
    eval_every: int = 0
    """Evaluate on select and val every this many steps; 0 means about 8 times per run."""
    eval_tokens: int = 0
    """Tokens of each split used per evaluation; 0 uses the whole split."""
    log_every: int = 10
    """Steps between log lines."""
    window_jitter: bool = True
    """Shift the window grid by a random offset each epoch, so the same text is cut differently."""
    doc_shuffle: bool = False
    """Document-level shuffling (NanoGPT Slowrun's record line 19): each epoch the train split's documents are put in
    a new order, seeded by (seed, epoch), before the windows are cut, so a window joins other documents each time."""
    augment_replace: float = 0.0
    """Data augmentation for many epochs (random token replacement, the best single method of arXiv 2606.16246):
    each input token, not the target, is replaced by a uniformly random token id with this probability, drawn
    from (seed, step, micro-batch, rank); 0 disables."""
    augment_offset: float = 0.0
    """Target-offset augmentation (arXiv 2606.16246's third family, which combines with augment_replace): this share
    of the training sequences, drawn per sequence from (seed, step, micro-batch, rank), predict token t+1+k instead
    of t+1, k uniform in 1..augment_offset_max; the last k positions of such a window keep their next token (the
    window holds no later one). The paper tells the model k by a marker token before the sequence; a store's
    vocabulary has none, so here the offset is unmarked (a noise on the targets of a share of sequences). 0
    disables; evaluation always predicts the next token."""
    augment_offset_max: int = 1
    """The largest offset k of augment_offset (1: an offset sequence predicts token t+2)."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu' or 'cuda'."""
    precision: str = "auto"
    """'auto' (bf16 autocast on CUDA, fp32 on CPU), 'fp32' or 'bf16'."""
    compile: bool | str = False
    """torch.compile the model: true, false, or 'auto': the trainer compiles when the run's estimated eager
    training time would save at least twice the compile time (`scarce.train.runtime.compile_decision`: a
    documented table of compile times and speed-ups per device, the run's FLOPs and the machine's peak); the
    decision and its estimate are logged and kept in summary.json (`compiled`); 'reduce-overhead': compiled in
    torch.compile's mode of that name (CUDA graphs: one replay per step instead of a launch per kernel, for small
    launch-bound shapes on a GPU; `benchmarks/gpu_check.py` measures it beside the default mode)."""
    parallel: str = "ddp"
    """Under torchrun: 'ddp' (every rank a replica, gradients averaged) or 'fsdp' (parameters, gradients and
    optimizer state sharded over the ranks, `scarce.train.parallel`). Not part of the run id: the same run either
    way, up to float rounding."""
    threads: int = 0
    """CPU threads for this process; 0 keeps torch's default. Run parallel work as 1-thread processes."""
    keep_checkpoints: int = 2
    """Training checkpoints kept (the newest that verifies is resumed from); older ones are deleted."""
    snapshot_every: int = 0
    """Keep the weights every this many steps (and at the end) under checkpoints/snapshots/, the members of
    a snapshot ensemble (Huang et al., 2017: set it to the LR cycle); 0 keeps none."""
    branch_steps: list[int] = field(default_factory=list)
    """Also keep a full checkpoint at each of these steps under branches/, for runs of the same setting and a
    shorter horizon to continue from (`scarce.runs.branch`: epoch grids under a warmup-stable-decay schedule);
    not part of the run id, it changes nothing the run computes."""
    tracker: str = ""
    """Experiment tracker: 'none', 'tensorboard' (RUN_DIR/tensorboard) or 'wandb'; empty takes $SCARCE_TRACKER
    (else none). Not part of the run id: it never changes what the run computes (`scarce.track`)."""

    def __post_init__(self):
        set_horizons = sum(x > 0 for x in (self.epochs, self.tokens, self.tokens_per_param))
        _check(set_horizons <= 1, "train.epochs/tokens/tokens_per_param", "set at most one horizon")
        _check(min(self.epochs, self.tokens, self.tokens_per_param) >= 0, "train horizon", "must be >= 0")
        _check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        _check(self.grad_accum >= 1, "train.grad_accum", "must be >= 1")
        _check(self.eval_every >= 0 and self.eval_tokens >= 0, "train.eval_every/eval_tokens", "must be >= 0")
        _check(self.log_every >= 1, "train.log_every", "must be >= 1")
        _check(self.device in ("auto", "cpu", "cuda"), "train.device", "must be auto, cpu or cuda")
        _check(self.parallel in ("ddp", "fsdp"), "train.parallel", "must be ddp or fsdp")
        _check(self.precision in ("auto", "fp32", "bf16"), "train.precision", "must be auto, fp32 or bf16")
        _check(isinstance(self.compile, bool) or self.compile in ("auto", "reduce-overhead"), "train.compile",
               "must be true, false, 'auto' or 'reduce-overhead'")
        _check(self.threads >= 0, "train.threads", "must be >= 0")
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints", "must be >= 1")
        _check(self.snapshot_every >= 0, "train.snapshot_every", "must be >= 0 (0 keeps no snapshots)")
        _check(0.0 <= self.augment_replace < 1.0, "train.augment_replace", "must be in [0, 1)")
        _check(0.0 <= self.augment_offset < 1.0, "train.augment_offset", "must be in [0, 1)")
        _check(self.augment_offset_max >= 1, "train.augment_offset_max", "must be >= 1")
        _check(self.tracker in ("", "none", "tensorboard", "wandb"), "train.tracker",
               "must be none, tensorboard or wandb (or empty: $SCARCE_TRACKER)")


@dataclass
class ObjectiveConfig:
    kind: str = "ce"
    """'ce' (cross-entropy on the data), 'distill': (1 - alpha) * CE + alpha * T^2 * KL(teacher_T || student_T)
    against frozen teacher runs (Hinton et al., 2015), or 'chain': the same loss inside one run of schedule
    'cyclic', each cycle from chain_from on learning from the snapshot that ended the cycle before it (the
    unlimited record: alpha 0.45, T 1.2, from cycle 8)."""
    teachers: list[str] = field(default_factory=list)
    """Run directories of the teachers (kind 'distill'); several form an ensemble teacher."""
    alpha: float = 0.5
    """Weight of the distillation term; 0 is plain training, 1 ignores the data labels."""
    temperature: float = 2.0
    """Softmax temperature of teacher and student in the KL term."""
    combine: str = "logit"
    """How several teachers combine: 'logit' (mean log-probability, renormalised) or 'prob' (mean probability)."""
    distill_on: str = "all"
    """Batches that get the distillation term: 'all', or 'real' (only those of the main store: text the teachers
    wrote, mixed in by the mix section, is trained on by cross-entropy alone)."""
    chain_from: int = 1
    """Kind 'chain': the first cycle (counted from 0) that learns from its predecessor's snapshot; earlier cycles
    train on the data alone."""

    def __post_init__(self):
        _check(self.kind in ("ce", "distill", "chain"), "objective.kind", "must be ce, distill or chain")
        _check(self.chain_from >= 1, "objective.chain_from", "must be >= 1 (cycle 0 has no predecessor)")
        _check(all(isinstance(t, str) and t for t in self.teachers), "objective.teachers", "must be run directories")
        _check(self.kind != "distill" or bool(self.teachers), "objective.teachers",
               "distillation needs at least one teacher run")
        _check(self.kind == "distill" or not self.teachers, "objective.teachers", "only objective.kind=distill has teachers")
        _check(0.0 <= self.alpha <= 1.0, "objective.alpha", "must be in [0, 1]")
        _check(self.temperature > 0, "objective.temperature", "must be > 0")
        _check(self.combine in ("logit", "prob"), "objective.combine", "must be logit or prob")
        _check(self.distill_on in ("all", "real"), "objective.distill_on", "must be all or real")


@dataclass
class MixConfig:
    store: str = ""
    """A second token store whose train split is mixed into training (e.g. text sampled from a teacher:
    sequence-level distillation); '' trains on the main store alone."""
    frac: float = 0.0
    """Share of micro-batches drawn from `store`, chosen as a pure function of (seed, step, micro-batch);
    epochs and the horizon count the main store."""
    stores: list[str] = field(default_factory=list)
    """Further token stores mixed in beside `store` (e.g. synthetic text of several kinds or teachers)."""
    fracs: list[float] = field(default_factory=list)
    """Share of micro-batches drawn from each of `stores`; frac + sum(fracs) is at most 1, the main store
    takes the rest."""

    def __post_init__(self):
        _check(0.0 <= self.frac <= 1.0, "mix.frac", "must be in [0, 1]")
        _check(bool(self.store) or self.frac == 0.0, "mix.store", "mix.frac > 0 needs a token store to mix in")
        _check(len(self.stores) == len(self.fracs), "mix.fracs", "needs one share per entry of mix.stores")
        _check(all(isinstance(x, str) and x for x in self.stores), "mix.stores", "must be token store paths")
        _check(all(0.0 <= f <= 1.0 for f in self.fracs), "mix.fracs", "must each be in [0, 1]")
        _check(not self.stores or bool(self.store), "mix.stores", "come after mix.store (set that first)")
        _check(self.frac + sum(self.fracs) <= 1.0 + 1e-9, "mix.fracs", "mix.frac + sum(mix.fracs) must be at most 1")

    def sources(self) -> list[tuple[str, float]]:
        """Every mixed-in store with its share (the main store takes the rest)."""
        return ([(self.store, self.frac)] if self.store else []) + list(zip(self.stores, self.fracs))


@dataclass
class InitConfig:
    seed: int = -1
    """Seed of the initial weights; -1 uses train.seed (ensembles may seed init and data order apart)."""
    source: str = ""
    """'' starts from random weights; the directory of a scarce run starts from its select-chosen
    weights (same model config); 'hf:NAME_OR_PATH' from a Hugging Face GPT-2 or Llama model (a local folder
    or the HF cache), whose architecture replaces the model section's. The optimizer state starts fresh."""

    def __post_init__(self):
        _check(self.seed >= -1, "init.seed", "must be >= 0, or -1 to use train.seed")


TOKENS_PER_PARAM_DEFAULT = 20.0
"""Default horizon of the size dial when no horizon is set (Hoffmann et al.'s compute-optimal ratio)."""

# Fields that change how a run is executed, not what it computes: left out of the run id.
NON_SEMANTIC_FIELDS = {("train", "log_every"), ("train", "threads"), ("train", "keep_checkpoints"),
                       ("train", "tracker"), ("train", "branch_steps"), ("train", "parallel")}
SCHEDULES = ("cosine", "wsd", "constant", "cyclic")
WD_SCHEDULES = ("constant", "lr", "cosine", "anti", "record")
INITS = ("gpt2", "record")
MUON_ORTHS = ("newton-schulz", "polar-express")

ADDED_FIELDS = {("model", "attn_dropout"): 0.0, ("optim", "avg_last"): 0, ("optim", "avg_every"): 0,
                ("train", "snapshot_every"): 0, ("model", "norm"): "rms", ("model", "norm_affine"): False,
                ("model", "norm_eps"): 0.0, ("model", "bias"): False, ("model", "position"): "rotary",
                ("model", "kv_heads"): 0, ("model", "rope_scaling"): "", ("mix", "stores"): [], ("mix", "fracs"): [],
                ("objective", "distill_on"): "all", ("optim", "cycle_epochs"): 0.0, ("optim", "cycle_steps"): 0,
                ("optim", "cycle_shape"): "cosine", ("optim", "perturb"): 0.0, ("optim", "perturb_final"): 0.0,
                ("optim", "wd_floor"): 1.0, ("objective", "chain_from"): 1, ("model", "drop_path"): 0.0,
                ("model", "init"): "gpt2", ("train", "augment_replace"): 0.0, ("optim", "swa_epochs"): 0,
                ("optim", "swa_floor"): 0.05, ("optim", "warmdown_power"): 1.0, ("train", "doc_shuffle"): False,
                ("optim", "muon_momentum_warmup"): 0, ("optim", "muon_momentum_start"): 0.85,
                ("optim", "muon_orth"): "newton-schulz", ("optim", "muon_row_norm"): False,
                ("model", "iha"): "", ("model", "loop_backprop"): "all", ("model", "xsa_learn"): False,
                ("train", "augment_offset"): 0.0, ("train", "augment_offset_max"): 1}
"""Fields added after run stores existed, left out of the run id while at their default so that the
ids of earlier runs stay valid."""
ADDED_SECTIONS = ("objective", "mix", "init")
"""Sections added after run stores existed, left out of the run id while every field is at its default."""


@dataclass
class RunConfig:
    data: str = ""
    """Path of the token store."""
    preset: str = ""
    """Name of the preset this config started from (informational)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    init: InitConfig = field(default_factory=InitConfig)
    tags: dict = field(default_factory=dict)
    """Labels only (sweep name, ensemble id, member index, stage): part of the run id, so that equal configs
    in two experiments stay two runs, but nothing reads them to decide what a run computes."""

    def __post_init__(self):
        if self.train.augment_offset:
            _check(self.objective.kind == "ce", "train.augment_offset",
                   f"offsets the targets: not with objective.kind={self.objective.kind} (its teacher predicts the "
                   "next token)")
            _check(self.train.augment_offset_max < self.model.seq_len, "train.augment_offset_max",
                   f"must be below model.seq_len ({self.model.seq_len})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        return _from_dict(cls, upgrade(d), "")

    def run_id(self, data_fingerprint: str = "") -> str:
        """Hash of the semantic config: the same experiment gets the same id wherever it runs."""
        d = self.to_dict()
        d["data"] = data_fingerprint or d["data"]
        for section, name in NON_SEMANTIC_FIELDS:
            d[section].pop(name, None)
        for (section, name), default in ADDED_FIELDS.items():
            if d[section][name] == default:
                d[section].pop(name)
        for section in ADDED_SECTIONS:
            if getattr(self, section) == type(getattr(self, section))():
                d.pop(section)
        if d["model"]["dropout"]:
            # model.dropout used to drop attention probabilities as well (now model.attn_dropout):
            # runs with dropout get new ids so that a store never mixes the two meanings.
            d["model"].setdefault("attn_dropout", 0.0)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


LEGACY_TAGS = ("distill", "mix", "init_seed", "snapshot_every")


def upgrade(d: dict) -> dict:
    """A config dict of any earlier version in today's form (the one load-time upgrade). Configs written
    before the objective, mix and init sections carried distillation, data mixing, the init seed and
    snapshots in `tags`; they move into their sections here, so an old run resumes as exactly itself."""
    if not isinstance(d, dict) or not isinstance(d.get("tags"), dict) or not set(LEGACY_TAGS) & set(d["tags"]):
        return d
    d = json.loads(json.dumps(d))
    tags = d["tags"]
    if "distill" in tags:
        old = tags.pop("distill")
        d["objective"] = {"kind": "distill", "teachers": list(old["teachers"]), "alpha": old["alpha"],
                          "temperature": old["temperature"]}
    if "mix" in tags:
        old = tags.pop("mix")
        d["mix"] = {"store": old["store"], "frac": old["synthetic_frac"]}
    if "init_seed" in tags:
        d["init"] = {"seed": tags.pop("init_seed")}
    if "snapshot_every" in tags:
        d.setdefault("train", {})["snapshot_every"] = tags.pop("snapshot_every")
    return d


def _from_dict(cls, d: dict, prefix: str):
    if not isinstance(d, dict):
        raise UserError(f"config{' ' + prefix if prefix else ''}: expected an object, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserError(f"unknown config field {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for name, value in d.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise UserError(str(e)) from None


def _coerce(value, hint, name: str):
    """Check a JSON value against a field's type; ints are accepted where floats are expected."""
    if isinstance(hint, types.UnionType):  # e.g. bool | str: the first type the value has
        args = typing.get_args(hint)
        for option in args:
            if isinstance(value, option):
                return value
        raise UserError(f"config field {name}: expected {' or '.join(a.__name__ for a in args)}, got {value!r}")
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise UserError(f"config field {name}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise UserError(f"config field {name}: expected a finite number, got {value!r}")
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if not ok:
        expected = "true or false (lower case, as JSON)" if hint is bool else hint.__name__
        raise UserError(f"config field {name}: expected {expected}, got {value!r}")
    return value


def parse_assignment(item: str, flag: str = "--set") -> tuple[str, object]:
    """One `FIELD=VALUE` string as (FIELD, value), the value parsed as JSON (else kept as a string): the one
    parser of every `--set`, `--option` and `--where` flag and of override lists."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise UserError(f"{flag} {item!r} is not of the form FIELD=VALUE (e.g. optim.lr=1e-3)")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def parse_assignments(items: list[str], flag: str = "--set") -> dict:
    """`FIELD=VALUE` strings as {FIELD: value} (a later FIELD replaces an earlier one)."""
    return dict(parse_assignment(item, flag) for item in items)


def apply_overrides(cfg: RunConfig, overrides: dict | list[str], flag: str = "--set") -> RunConfig:
    """A new RunConfig with dotted fields replaced: {"optim.lr": 1e-3, ...}, or `FIELD=VALUE` strings applied in
    order. A horizon field set to non-zero clears the other two (a new horizon replaces the preset's)."""
    pairs = overrides.items() if isinstance(overrides, dict) else [parse_assignment(o, flag) for o in overrides]
    d = cfg.to_dict()
    for key, value in pairs:
        parts = key.split(".")
        target = d
        for p in parts[:-1]:
            if not isinstance(target.get(p), dict):
                raise UserError(f"{flag} {key}: unknown config section {p!r}")
            target = target[p]
        if parts[-1] not in target:
            raise UserError(f"{flag} {key}: unknown config field {key!r}")
        target[parts[-1]] = value
        if key in HORIZON_FIELDS and value:
            for other in HORIZON_FIELDS - {key}:
                d["train"][other.split(".")[1]] = 0
    return RunConfig.from_dict(d)


HORIZON_FIELDS = {"train.epochs", "train.tokens", "train.tokens_per_param"}


def set_horizon(cfg: RunConfig, epochs: float = 0.0, tokens: int = 0, tokens_per_param: float = 0.0) -> RunConfig:
    """Replace the horizon (only one of the three may be non-zero)."""
    train = dataclasses.replace(cfg.train, epochs=epochs, tokens=tokens, tokens_per_param=tokens_per_param)
    return dataclasses.replace(cfg, train=train)


# ---------------------------------------------------------------------------------------------
# Presets: the size dial is `depth`; width and heads follow from the aspect ratio and head_dim.

PRESETS: dict[str, Callable[[], RunConfig]] = {}


def preset(fn: Callable[[], RunConfig]) -> Callable[[], RunConfig]:
    PRESETS[fn.__name__.replace("_", "-")] = fn
    return fn


def get_preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    cfg = PRESETS[name]()
    cfg.preset = name
    return cfg


def by_depth(depth: int, aspect_ratio: int, head_dim: int, seq_len: int, lr: float) -> RunConfig:
    """A member of a model family: everything else derives from depth (width, heads, horizon)."""
    model = ModelConfig(depth=depth, aspect_ratio=aspect_ratio, head_dim=head_dim, seq_len=seq_len)
    return RunConfig(model=model, optim=OptimConfig(lr=lr))


@preset
def tiny() -> RunConfig:
    """~0.8M non-embedding parameters (width 128): learns something on a CPU in a minute."""
    cfg = by_depth(4, 32, 32, 256, 3e-3)
    cfg.train = TrainConfig(epochs=1.0)
    return cfg


@preset
def small() -> RunConfig:
    """~6M non-embedding parameters (width 288), T=256: the CPU workhorse."""
    cfg = by_depth(6, 48, 48, 256, 2e-3)
    cfg.train = TrainConfig(epochs=1.0)
    return cfg


@preset
def medium() -> RunConfig:
    """~25M non-embedding parameters (width 512), T=512."""
    return by_depth(8, 64, 64, 512, 1.5e-3)


@preset
def gpt2_small() -> RunConfig:
    """GPT-2 small shape: 12 layers, width 768, 12 heads, T=1024 (~85M non-embedding parameters)."""
    cfg = by_depth(12, 64, 64, 1024, 6e-4)
    cfg.train = TrainConfig(batch_size=32)
    return cfg


def with_slowrun_stack(cfg: RunConfig) -> RunConfig:
    """Turn on, at the config's size, every technique of the NanoGPT Slowrun 1-hour record (qlabs-eng/slowrun,
    train.py of record 20, 2026-04-26) that scarce has a knob for, with the record's value. Learning rates,
    size and horizon stay the config's; docs/architecture.md maps each record line to its field."""
    return apply_overrides(cfg, slowrun_overrides(record=True))


SLOWRUN_MODEL = dict(
    mlp="swiglu", value_embed="alt", unet_skips=True, attn_gate=True, mtp_weight=0.3,  # record lines 3-6, 16
    resid_lambdas=True, qk_norm=True, window_pattern="SSSL", tie_embeddings=False,  # its nanochat baseline
    softcap=10.0, dropout=0.1,
    # lines 7-8: layers 15-20 of 30 ('auto' gives exactly [15, 21) at depth 30) run 3 times from epoch 7 of 11
    loop_layers="auto", loop_extra=2, loop_from=6 / 11,
)
SLOWRUN_OPTIM = dict(
    optimizer="muon", cautious_wd=True, weight_decay=1.3,  # 1.6 until record 11 retuned it
    beta1=0.8, eps=1e-10, grad_clip=0.0,  # the record's AdamW groups; it never clips
    schedule="wsd", warmup_frac=0.0, warmdown_frac=0.2, final_lr_frac=0.0,
    # Stand-ins, scarce lacking the record's own: its anti-phase weight-decay sawtooth (line 20) averages ~0.96x,
    # so constant is the nearest schedule; its average of the last 3 epoch checkpoints' predictions (lines 12-13)
    # becomes the average of the weights at the last 3 checkpoints, blended on select. No EMA: line 11 added
    # one and the record dropped it for the checkpoint average.
    wd_schedule="constant", ema_decay=0.0, avg_last=3,
)
# The record's later lines (13-20), in the `slowrun` preset but not in `slowrun_overrides` (the bench's stack, which
# keeps the lines above: benchmarks/results/record_stack_cpu.md measured these at CPU scale, most null or worse).
# SWA over the last 3 epochs (line 13, `optim.swa_epochs=3`) is left out: the preset trains `small`'s one epoch;
# set it with train.epochs >= 3. Without it the record's weight-decay schedule falls to 0.65 at the end.
SLOWRUN_RECORD_MODEL = dict(init="record", drop_path=0.05, iha="all")  # lines 14, 15, 17
SLOWRUN_RECORD_OPTIM = dict(
    wd_schedule="record", warmdown_power=0.5,  # line 20 (replaces the constant stand-in above)
    muon_row_norm=True, muon_orth="polar-express", muon_momentum_warmup=300, muon_momentum_start=0.85,  # line 18
)
SLOWRUN_RECORD_TRAIN = dict(doc_shuffle=True)  # line 19


def slowrun_overrides(looping: bool = True, record: bool = False) -> dict:
    """The slowrun stack as dotted overrides (for sweep and bench points); without looping on request. `record`: with
    the record's later lines as the `slowrun` preset has them (SLOWRUN_RECORD_*); the bench's stack leaves them out."""
    model, optim = SLOWRUN_MODEL, SLOWRUN_OPTIM
    if record:
        model, optim = {**model, **SLOWRUN_RECORD_MODEL}, {**optim, **SLOWRUN_RECORD_OPTIM}
    out = {f"model.{k}": v for k, v in model.items()} | {f"optim.{k}": v for k, v in optim.items()}
    if record:
        out |= {f"train.{k}": v for k, v in SLOWRUN_RECORD_TRAIN.items()}
    if not looping:
        out["model.loop_layers"] = ""
    return out


@preset
def slowrun() -> RunConfig:
    """The fixed-data stack on the `small` size; change the size with --set model.depth=N."""
    return with_slowrun_stack(small())


def with_slowrun_tiny_stack(cfg: RunConfig) -> RunConfig:
    """Turn on, at the config's depth, the lines of NanoGPT Slowrun's tiny-track record (#14, tiny/train.py at
    qlabs-eng/slowrun d1fbdb7, val 3.307) that scarce has a knob for, with the record's values: the 2x weight-shared
    recurrence (every layer but the last, which scarce never loops) with backprop through the last pass only, from
    70% of training (the late transition), learnable XSA on every layer, half-truncated RoPE and the key offset on
    the long-window layers and the last, Polar Express Muon with its momentum warmup, document shuffling. Learning
    rates, size and horizon stay the config's; docs/architecture.md says what each line does and what is left out."""
    depth = cfg.model.depth
    long_layers = {i for i in range(depth) if "SSSL"[i % 4] == "L"} | {depth - 1}
    model = dataclasses.replace(cfg.model, **SLOWRUN_TINY_MODEL, key_offset=",".join(map(str, sorted(long_layers))),
                                loop_layers=f"0:{depth - 1}")
    optim = dataclasses.replace(cfg.optim, **SLOWRUN_TINY_OPTIM)
    train = dataclasses.replace(cfg.train, doc_shuffle=True)
    return dataclasses.replace(cfg, model=model, optim=optim, train=train)


SLOWRUN_TINY_MODEL = dict(
    mlp="swiglu", value_embed="alt", unet_skips=True, attn_gate=True, resid_lambdas=True,  # tiny records 2-4
    qk_norm=True, window_pattern="SSSL", tie_embeddings=False, softcap=15.0, dropout=0.1,  # its nanochat baseline
    rotary_frac=0.5,  # record 6 (with the key offset: the L layers and the last, set from the depth)
    xsa=True, xsa_learn=True,  # records 11 and 13: learnable XSA on every layer
    loop_extra=1, loop_from=0.7, loop_backprop="last",  # records 12 and 14: 2x recurrence for the last 30%
)
SLOWRUN_TINY_OPTIM = dict(
    optimizer="muon", muon_orth="polar-express", muon_momentum_warmup=300, muon_momentum_start=0.85,
    cautious_wd=True, weight_decay=0.8, beta1=0.8, eps=1e-10, grad_clip=0.0,  # record 1: weight decay 0.8
    schedule="wsd", warmup_frac=0.0, warmdown_frac=0.4, final_lr_frac=0.0,  # record 5's warmdown
)


@preset
def slowrun_tiny() -> RunConfig:
    """The tiny track's stack on the `small` size (depth 6: layers 0-4 recur); for another depth N set
    model.depth=N with model.loop_layers=0:N-1 (and the key offset's layers), or call with_slowrun_tiny_stack."""
    return with_slowrun_tiny_stack(small())
