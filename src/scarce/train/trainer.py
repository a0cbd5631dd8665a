"""The training loop: multi-epoch training over a fixed train split, evaluation on select and val,
atomic checkpoints and bit-identical resume. `Trainer` builds every part of a run from its config
alone; `scarce.runs.launch` is the one place that starts, continues or reuses runs with it.

The batch of each step is a pure function of (seed, step) and dropout is reseeded per step, so a
resumed run replays exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scarce import atomic, rundir, track
from scarce.config import TOKENS_PER_PARAM_DEFAULT, RunConfig
from scarce.data.loader import MixLoader, WindowLoader
from scarce.data.store import TokenStore, open_store
from scarce.data.tokenizer import hf_tokenizer
from scarce.errors import Diverged, UserError
from scarce.eval.loss import evaluate
from scarce.model import hf
from scarce.model.gpt import GPT, flops_per_token, forward_flops_per_token, param_counts
from scarce.model.looping import loop_switch_step, loops_at
from scarce.progress import format_seconds, progress_bar
from scarce.train import checkpoint as ckpt
from scarce.train import parallel
from scarce.train.augment import offset_targets, replace_tokens
from scarce.train.distill import CycleChain, Distillation, build_objective
from scarce.train.ema import BLENDS, blend, build_averager
from scarce.train.optim import build_optimizer, muon_momentum, set_lr, set_momentum, set_weight_decay
from scarce.train.perturb import perturb_scale, perturb_weights
from scarce.train.runtime import Runtime, compile_decision, make_runtime, peak_flops
from scarce.train.schedule import cycle_length, cycle_of, lr_multiplier, swa_start, wd_multiplier


@dataclass
class TrainState:
    """What the loop carries between steps and across a resume (saved as JSON in each checkpoint)."""

    step: int = 0
    wall_seconds: float = 0.0
    eval_seconds: float = 0.0
    """Of wall_seconds, the time spent evaluating, blending and checkpointing."""
    best_select: float = math.inf
    best: dict = field(default_factory=dict)  # the eval record of the best-on-select checkpoint
    last_eval: dict = field(default_factory=dict)
    loss_sum: float = 0.0
    loss_n: int = 0
    """The train loss summed over the `loss_n` steps since the last train record (its running average goes on
    across a resume, so a resumed run logs what an uninterrupted one does)."""
    global_batch: int = 0
    """Sequences per optimiser step over all ranks (batch_size x grad_accum x world at the run's start): a
    resume under another world size keeps it by changing the micro-batches per step."""


def resolve_config(cfg: RunConfig, store: TokenStore) -> RunConfig:
    """Fill what comes from the data (vocabulary) or from a HF model the run starts from (architecture,
    tokenizer), and check the model fits the data."""
    if hf.is_hf(cfg.init.source):
        cfg.model = hf.resolve(cfg.model, cfg.init.source)
        check_tokenizer(store, cfg.init.source)
        if store.vocab_size > cfg.model.vocab_size:
            raise UserError(f"vocabulary mismatch: {store.path} has {store.vocab_size} tokens but {cfg.init.source} "
                            f"embeds {cfg.model.vocab_size}")
        return cfg
    if cfg.init.source and (hint := hf_hint(cfg.init.source)):
        raise UserError(f"init.source {cfg.init.source} is not a scarce run: {hint}")
    if cfg.init.source and not rundir.is_run(cfg.init.source):
        raise UserError(f"init.source {cfg.init.source} is not a run directory (no config.json); give a scarce run "
                        "folder or hf:NAME_OR_PATH")
    if cfg.init.source:
        rundir.check_tokenizer(cfg.init.source, store, "init.source")
    for teacher in cfg.objective.teachers:
        rundir.check_tokenizer(teacher, store, "objective.teachers:")
    if cfg.model.vocab_size == 0:
        cfg.model.vocab_size = store.vocab_size
    return check_vocabulary(cfg, store)


def check_vocabulary(cfg: RunConfig, store: TokenStore) -> RunConfig:
    """The config, unless its model's vocabulary does not fit the store's (a one-line error): the same size, or
    at least the store's for a model started from a HF model (whose embedding may be padded)."""
    if hf.is_hf(cfg.init.source):
        if store.vocab_size > cfg.model.vocab_size:
            raise UserError(f"vocabulary mismatch: {store.path} has {store.vocab_size} tokens but "
                            f"{cfg.init.source} embeds {cfg.model.vocab_size}")
    elif cfg.model.vocab_size != store.vocab_size:
        raise UserError(
            f"vocabulary mismatch: the model has vocab_size {cfg.model.vocab_size} but the token store "
            f"{store.path} has {store.vocab_size}; prepare a store with vocabulary {cfg.model.vocab_size} "
            f"or leave model.vocab_size at 0 (taken from the store)"
        )
    return cfg


def hf_hint(source: str) -> str:
    """For a folder that holds a Hugging Face model (config.json with a model_type), how to name it."""
    path = Path(source) / "config.json"
    try:
        hf_model = path.is_file() and "model_type" in json.loads(path.read_text())
    except (OSError, ValueError):
        hf_model = False
    return f"it holds a Hugging Face model (config.json with a model_type); write hf:{source}" if hf_model else ""


def check_tokenizer(store: TokenStore, source: str) -> None:
    """A run from a HF model trains on a store made with that model's tokenizer (`prepare --tokenizer hf:...`)."""
    model_tok = hashlib.sha256(hf_tokenizer(hf.name_of(source)).to_json().encode()).hexdigest()
    if model_tok != store.manifest["tokenizer"]["sha256"]:
        made = store.manifest["tokenizer"].get("source") or store.manifest["tokenizer"].get("kind", "?")
        raise UserError(f"tokenizer mismatch: {store.path} was made with the tokenizer {made}, not {source}'s; "
                        f"prepare the store with --tokenizer {source}")


def total_steps(cfg: RunConfig, loader: WindowLoader, params: int) -> int:
    t = cfg.train
    tokens_per_step = loader.B * loader.accum * loader.world * loader.T
    if t.epochs:
        return max(1, round(t.epochs * loader.steps_per_epoch))
    tokens = t.tokens or (t.tokens_per_param or TOKENS_PER_PARAM_DEFAULT) * params
    return max(1, math.ceil(tokens / tokens_per_step))


def check_cycles(cfg: RunConfig, cycle: int, steps: int, steps_per_epoch: int) -> None:
    """A one-line error for cycles the run cannot hold: a chain without cycles, a cycle longer than the run, more SWA
    epochs than the run has."""
    if cfg.optim.swa_epochs * steps_per_epoch > steps:
        raise UserError(f"optim.swa_epochs: {cfg.optim.swa_epochs} SWA epochs of {steps_per_epoch} steps are longer "
                        f"than the run ({steps} steps); lower optim.swa_epochs or lengthen the horizon")
    if cfg.objective.kind == "chain" and cfg.optim.schedule != "cyclic":
        raise UserError("objective.kind=chain distills each cycle from the one before: it needs optim.schedule=cyclic "
                        "(with optim.cycle_epochs or optim.cycle_steps)")
    if cycle > steps:
        length = (f"{cfg.optim.cycle_epochs:g} epochs" if cfg.optim.cycle_epochs else f"{cfg.optim.cycle_steps} steps")
        raise UserError(f"optim.cycle_epochs/cycle_steps: a cycle of {length} ({cycle} steps) is longer than the run "
                        f"({steps} steps); shorten the cycle or lengthen the horizon")


def build_model(cfg: RunConfig, device: str) -> GPT:
    """The initial model: random weights seeded by init.seed (train.seed when -1), or the select-chosen
    weights of the run named by init.source."""
    torch.manual_seed(cfg.init.seed if cfg.init.seed >= 0 else cfg.train.seed)
    model = GPT(cfg.model)
    if hf.is_hf(cfg.init.source):
        rundir.load_state(model, hf.load_weights(cfg.init.source, cfg.model), cfg.init.source)
    elif cfg.init.source:
        rundir.load_state(model, rundir.load_weights(rundir.best_weights(cfg.init.source)), cfg.init.source)
    return model.to(device)


def build_loader(cfg: RunConfig, store: TokenStore, rank: int, world: int,
                 accum: int = 0) -> WindowLoader | MixLoader:
    """Training batches of the train split, mixed with a second store's when the config says so; `accum`
    micro-batches per step (default train.grad_accum)."""
    t = cfg.train

    def windows(tokens):
        return WindowLoader(tokens, cfg.model.seq_len, t.batch_size, accum or t.grad_accum, t.seed, rank, world,
                            t.window_jitter, store.eot_id if t.doc_shuffle else None)

    main = windows(store.split("train"))
    if not cfg.mix.sources():
        return main
    others = []
    for path, _ in cfg.mix.sources():
        other = open_store(path)
        if other.manifest["tokenizer"]["sha256"] != store.manifest["tokenizer"]["sha256"]:
            raise UserError(f"mix store {other.path} and data {store.path} have different tokenizers; a mixed-in "
                            f"store must share the run's tokenizer (derive it from the same store)")
        other.check()
        others.append(windows(other.split("train")))
    return MixLoader(main, others, [f for _, f in cfg.mix.sources()], t.seed)


class Trainer:
    """One run, built from its config alone: model and init, objective, optimizer, loader, averager."""

    def __init__(self, cfg: RunConfig, run_dir: Path, quiet: bool = False, resolved: bool = False):
        """`resolved`: `cfg` went through `resolve_config` already (a run's stored config, a sweep point), so
        only its vocabulary is checked against the store."""
        self.run_dir, self.quiet = Path(run_dir), quiet
        self.tracker: track.Tracker = track.Tracker()  # the run's own, while `run` trains
        self.grad_norm = 0.0
        track.tracker_name(cfg.train.tracker)  # a bad $SCARCE_TRACKER fails here, before the run folder is written
        self.store = open_store(cfg.data)
        self.store.check()
        self.cfg = check_vocabulary(cfg, self.store) if resolved else resolve_config(cfg, self.store)
        self.rt: Runtime = make_runtime(cfg.train)
        self.model = build_model(cfg, self.rt.device)
        self.parallelism = parallel.strategy(cfg, self.rt)
        self.parallelism.prepare(self.model)  # FSDP shards in place: the optimizer must see the sharded weights
        self.objective = build_objective(cfg.objective, cfg.model.vocab_size, self.rt.device)
        self.optimizer = build_optimizer(self.model, cfg.optim, self.rt.device)
        self.forward = self.parallelism.forward(self.model)
        t = cfg.train
        self.params = param_counts(self.model)
        self.plan_steps(t.grad_accum)
        self.flops_per_token = flops_per_token(self.model)
        peak = peak_flops(self.rt.device, torch.get_num_threads()) * self.rt.world  # flops_at counts every rank
        self.compiled, self.compile_reason = compile_decision(self.parallelism.compile_setting(t.compile),
                                                              self.rt.device, self.flops_at(self.steps), peak)
        if self.compiled:
            self.forward = torch.compile(self.forward, mode=t.compile if t.compile == "reduce-overhead" else None)
        self.averager = build_averager(cfg.optim, self.steps, self.eval_every)
        self.token_bytes = self.store.token_bytes()
        self.state = TrainState(global_batch=t.batch_size * t.grad_accum * self.rt.world)
        self.run_id = cfg.run_id(self.store.fingerprint)

    # -- evaluation and checkpoints ---------------------------------------------------------
    def evaluate(self, step: int) -> dict:
        record = {"type": "eval", "step": step, "tokens_seen": step * self.tokens_per_step,
                  "flops": self.flops_at(step)}
        for split in ("select", "val"):
            r = evaluate(self.model, self.store.split(split), self.token_bytes, self.cfg.model.seq_len,
                         self.cfg.train.batch_size, self.cfg.train.eval_tokens, self.rt.device, self.rt.autocast,
                         windows=split == "val")
            record[f"{split}_loss"], record[f"{split}_bpb"] = r["loss"], r["bpb"]
            if split == "val":
                self.val_windows = r["window_nll"]  # written beside the weights if they are the best
            if not math.isfinite(r["loss"]):
                raise Diverged(f"the {split} loss at step {step} is {r['loss']}: the weights diverged")
        return record

    def full_state(self) -> tuple[dict, torch.optim.Optimizer | dict]:
        """The weights and optimizer state to save, whole (sharded: gathered to rank 0, a collective)."""
        return self.parallelism.full_state(self.model, self.optimizer)

    def checkpoint(self, record: dict) -> None:
        s = self.state
        weights, optimizer = self.full_state()
        better = record["select_loss"] < s.best_select
        if better:
            s.best_select, s.best = record["select_loss"], record
        s.last_eval = record
        if not self.rt.is_main:  # every rank evaluates (same numbers); rank 0 alone writes
            return
        if better:
            rundir.save_weights(rundir.best_weights(self.run_dir), weights, self.model.loops)
            self.save_val_windows(record["step"])
        state = {k: v for k, v in vars(s).items() if k != "step"}
        avg = self.averager
        extra = {f"{avg.prefix}{k}": v for k, v in avg.state_dict().items()} if avg is not None else {}
        ckpt.save_checkpoint(self.run_dir, s.step, weights | extra, optimizer, state, self.cfg.train.keep_checkpoints)

    def save_val_windows(self, step: int) -> None:
        """The per-window val NLL of the weights just saved as best (`rundir.best_val_windows`), so the bench's
        paired bootstraps read them instead of evaluating the same weights again."""
        arrays = {"window_nll": self.val_windows, "step": np.int64(step), "seq_len": np.int64(self.cfg.model.seq_len),
                  "val_sha256": np.array(self.store.manifest["splits"]["val"]["sha256"])}
        atomic.write_arrays(rundir.best_val_windows_path(self.run_dir), **arrays)

    def restore(self) -> None:
        loaded = ckpt.load_checkpoint(self.run_dir, lambda m: print(m, file=sys.stderr) if self.rt.is_main else None)
        if loaded is None:
            return
        model_state, opt_tensors, state = loaded
        here = self.state.global_batch
        state["global_batch"] = state.get("global_batch") or here  # checkpoints before the field: this world's
        if state["global_batch"] != here:
            self.rescale_world(state["global_batch"])
        if self.averager is not None:
            n = len(self.averager.prefix)
            self.averager.load_state_dict({k[n:]: model_state.pop(k) for k in list(model_state)
                                           if k.startswith(self.averager.prefix)})
        self.parallelism.load(self.model, self.optimizer, model_state, opt_tensors, state.pop("optimizer"),
                              self.run_dir / "checkpoints")
        self.state = TrainState(**{k: v for k, v in state.items() if k in TrainState.__dataclass_fields__})
        if self.rt.is_main:
            self._truncate_metrics(self.state.step)

    def rescale_world(self, global_batch: int) -> None:
        """Resume under another world size: the same sequences per step (the loader's windows of a step are one
        contiguous block of its permutation, whatever the split into ranks and micro-batches), as
        global_batch / (batch_size x world) micro-batches per step. A mixed run (`mix`) draws each micro-batch's
        store anew, so its later steps mix the same shares in other places."""
        b, world = self.cfg.train.batch_size, self.rt.world
        if global_batch % (b * world):
            raise UserError(f"cannot resume {self.run_dir} under world size {world}: the run takes {global_batch} "
                            f"sequences per step and {world} rank(s) of train.batch_size {b} do not divide them")
        accum = global_batch // (b * world)
        if self.rt.is_main:
            print(f"resuming under world size {world}: {accum} micro-batch(es) of {b} per rank and step "
                  f"(train.grad_accum was {self.accum}); {global_batch} sequences per step as before", file=sys.stderr)
        self.plan_steps(accum)
        self.averager = build_averager(self.cfg.optim, self.steps, self.eval_every)

    def plan_steps(self, accum: int) -> None:
        """The loader of `accum` micro-batches per rank and step, and what follows from it: the steps to the
        horizon, the evaluation interval, the tokens per step."""
        t = self.cfg.train
        self.accum = accum
        self.loader = build_loader(self.cfg, self.store, self.rt.rank, self.rt.world, accum)
        self.steps = total_steps(self.cfg, self.loader, self.params["total"])
        self.cycle = cycle_length(self.cfg.optim, self.loader.steps_per_epoch)
        check_cycles(self.cfg, self.cycle, self.steps, self.loader.steps_per_epoch)
        self.swa_start = swa_start(self.cfg.optim, self.steps, self.loader.steps_per_epoch)
        self.eval_every = t.eval_every or max(1, self.steps // 8)
        self.tokens_per_step = t.batch_size * accum * self.rt.world * self.cfg.model.seq_len
        self._teacher_micros: np.ndarray | None = None

    def _truncate_metrics(self, step: int) -> None:
        """Drop log records written after the checkpoint: the resumed run writes them again."""
        path = self.run_dir / rundir.METRICS
        if not path.exists():
            return
        keep, damaged = [], 0
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line) if line else None
                if record is not None and record["step"] <= step:
                    keep.append(line)
            except (ValueError, TypeError, KeyError):
                damaged += 1  # e.g. a line cut short when the machine went down mid-append
        if damaged:
            print(f"warning: dropped {damaged} damaged line(s) of {path}", file=sys.stderr)
        atomic.write_text(path, "".join(line + "\n" for line in keep))

    # -- the loop --------------------------------------------------------------------------
    def compute_loss(self, x: torch.Tensor, y: torch.Tensor, real: bool = True) -> torch.Tensor:
        """The training objective (config section `objective`) of one micro-batch (`real`: from the main store)."""
        return self.objective(self.forward, x, y, real)

    def train_step(self, step: int) -> torch.Tensor:
        if self.cycle:  # first: loading the chain's teacher draws from the global generator
            self.start_cycle(step)
        torch.manual_seed(self.cfg.train.seed * 1_000_003 + step)  # dropout masks depend on (seed, step) only
        self.model.loops = loops_at(self.cfg.model, step, self.steps)  # looping switches on at a fixed step
        epoch = self.loader.steps_per_epoch
        lr_mult = lr_multiplier(step, self.steps, self.cfg.optim, self.cycle, epoch)
        set_lr(self.optimizer, lr_mult)
        if self.cfg.optim.wd_schedule != "constant":
            set_weight_decay(self.optimizer, wd_multiplier(step, self.steps, self.cfg.optim, lr_mult, epoch))
        if self.cfg.optim.muon_momentum_warmup:
            set_momentum(self.optimizer, muon_momentum(step, self.cfg.optim))
        accum = self.accum
        total = torch.zeros((), device=self.rt.device)
        for micro in range(accum):
            x, y = self.loader.batch(step, micro)
            if self.cfg.train.augment_replace:
                x = replace_tokens(x, self.cfg.train.augment_replace, self.store.vocab_size,
                                   (self.cfg.train.seed, step, micro, self.rt.rank))
            if self.cfg.train.augment_offset:
                y = offset_targets(y, self.cfg.train.augment_offset, self.cfg.train.augment_offset_max,
                                   (self.cfg.train.seed, step, micro, self.rt.rank))
            real = self.loader.source(step, micro) == 0
            with self.rt.autocast():
                loss = self.compute_loss(x.to(self.rt.device), y.to(self.rt.device), real) / accum
            loss.backward()
            total += loss.detach()
        norm = torch.zeros((), device=self.rt.device)
        if self.cfg.optim.grad_clip:
            norm = parallel.full(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.averager is not None and self.averager.due(step):
            self.averager.update(self.model)
        return torch.stack([total, norm.detach().float()])

    def start_cycle(self, step: int) -> None:
        """Schedule 'cyclic': perturb the weights on a cycle's first step (after the snapshot of the one before),
        and hold the chain's teacher of this cycle. Both depend on the step alone, so a resume replays them."""
        cycle = cycle_of(step, self.cycle)
        if step == cycle * self.cycle and cycle > 0 and (self.cfg.optim.perturb or self.cfg.optim.perturb_final):
            scale = perturb_scale(cycle, self.steps // self.cycle, self.cfg.optim)
            perturb_weights(self.optimizer, scale, self.cfg.train.seed, cycle)
        if isinstance(self.objective, CycleChain):
            self.objective.at_cycle(cycle, self.run_dir, rundir.snapshot_path(self.run_dir, cycle * self.cycle))

    def snapshot_due(self, done: int) -> bool:
        """Whether the weights after `done` steps are kept as a snapshot: every train.snapshot_every steps and at
        the end, at every cycle end of schedule 'cyclic' (the population's members) and at the end of every SWA
        epoch (the checkpoints the record averages)."""
        every = self.cfg.train.snapshot_every
        swa = self.swa_start is not None and done > self.swa_start and (done - self.swa_start) % self.loader.steps_per_epoch == 0
        return bool(every and (done % every == 0 or done == self.steps) or self.cycle and done % self.cycle == 0 or swa)

    def flops_at(self, step: int) -> float:
        """Training FLOPs of the first `step` steps; looped replays count from their switch-on step."""
        switch = loop_switch_step(self.cfg.model, self.steps)
        looped = 0 if switch is None else max(0, step - switch)
        extra = flops_per_token(self.model, self.cfg.model.loop_extra) - self.flops_per_token if looped else 0.0
        return self.tokens_per_step * (step * self.flops_per_token + looped * extra) + self.teacher_flops(step)

    def teacher_flops(self, step: int) -> float:
        """FLOPs of the teachers' forward passes in the first `step` steps (objectives distill and chain): one
        forward of every teacher on each micro-batch that ran them, at the run's sequence length. A chain's teacher
        is the snapshot ending the cycle before, from cycle chain_from on; `objective.distill_on=real` skips the
        micro-batches mixed in from other stores."""
        if not isinstance(self.objective, Distillation):
            return 0.0
        seq_len, micro_tokens = self.cfg.model.seq_len, self.tokens_per_step / self.accum
        if not isinstance(self.objective, CycleChain):
            per_token = sum(forward_flops_per_token(t, seq_len) for t in self.objective.teachers)
            return micro_tokens * per_token * self.teacher_micros(0, step)
        total, first = 0.0, max(1, self.cfg.objective.chain_from)
        for cycle in range(first, math.ceil(step / self.cycle)):
            # the teacher is the snapshot taken after step cycle x length - 1, with the passes the model made then
            loops = loops_at(self.cfg.model, cycle * self.cycle - 1, self.steps)
            per_token = forward_flops_per_token(self.model, seq_len, loops)
            total += micro_tokens * per_token * self.teacher_micros(cycle * self.cycle, min(step, (cycle + 1) * self.cycle))
        return total

    def teacher_micros(self, start: int, stop: int) -> int:
        """Micro-batches of steps [start, stop) that run the teachers: all of them, or with distill_on=real only
        those the mix draws from the main store (`loader.source`, a function of the step)."""
        if stop <= start:
            return 0
        if self.cfg.objective.distill_on == "all" or not isinstance(self.loader, MixLoader):
            return (stop - start) * self.accum
        if self._teacher_micros is None:
            real = [sum(self.loader.source(s, m) == 0 for m in range(self.accum)) for s in range(self.steps)]
            self._teacher_micros = np.concatenate([[0], np.cumsum(real)])
        return int(self._teacher_micros[min(stop, self.steps)] - self._teacher_micros[start])

    def apply_average_blend(self) -> float | None:
        """Load the blend of averaged (EMA or last-k) and last weights with the lowest select loss
        (never val); returns the average's weight in it."""
        avg = self.averager
        average = avg.shadow if avg is not None else {}  # LastK computes its mean on each access: once here
        if not average:
            return None
        last = {k: v.clone() for k, v in self.model.state_dict().items()}
        losses = {}
        for alpha in BLENDS:
            self.model.load_state_dict(blend(average, last, alpha))
            losses[alpha] = evaluate(self.model, self.store.split("select"), self.token_bytes, self.cfg.model.seq_len,
                                     self.cfg.train.batch_size, self.cfg.train.eval_tokens, self.rt.device,
                                     self.rt.autocast)["loss"]
        best = min(losses, key=losses.get)
        self.model.load_state_dict(blend(average, last, best))
        self.say(f"{avg.name} blends on select: " + ", ".join(f"{a:g}: {v:.4f}" for a, v in losses.items()) + f" -> {best:g}")
        return best

    def run(self, stop_at_step: int | None = None) -> dict | None:
        """Train to the horizon (or, for tests, stop as if killed after `stop_at_step` steps), with the run's
        tracker (`scarce.track`) open on the main process."""
        if self.rt.is_main:
            self.tracker = track.open_tracker(self.cfg.train.tracker, self.run_dir, self.run_id, self.cfg.to_dict())
        try:
            summary = self._train(stop_at_step)
            if summary is not None:
                self.tracker.summary(summary)
            return summary
        finally:
            self.tracker.close()
            self.tracker = track.Tracker()

    def _train(self, stop_at_step: int | None) -> dict | None:
        self.model.train()
        start_step, t_start, wall0 = self.state.step, time.perf_counter(), self.state.wall_seconds
        peak = peak_flops(self.rt.device, torch.get_num_threads())
        self.log_header(peak)
        # tokens/s and MFU count training steps only: `timed` steps since `t_log`, both reset after an evaluation
        loss_sum, loss_n = torch.tensor(self.state.loss_sum, dtype=torch.float32), self.state.loss_n
        timed, t_log = 0, time.perf_counter()
        for step in range(start_step, self.steps):
            loss, norm = self.train_step(step).cpu()  # one device sync per step for both checks
            if not torch.isfinite(loss) or not torch.isfinite(norm):
                # A non-finite gradient norm has already spread over every weight through clipping and the
                # update: nothing of this step is saved.
                raise Diverged(f"training diverged at step {step + 1} (loss {loss.item()}, gradient norm "
                               f"{norm.item()}); lower optim.lr or raise optim.warmup_frac")
            loss_sum += loss
            loss_n += 1
            self.grad_norm = float(norm)  # 0 without clipping (the norm is only computed to clip)
            timed += 1
            self.state.step = step + 1
            self.state.wall_seconds = wall0 + time.perf_counter() - t_start
            done = step + 1
            if done % self.cfg.train.log_every == 0 or done == self.steps:
                dt = time.perf_counter() - t_log
                self.log_train(done, (loss_sum / loss_n).item(), timed * self.tokens_per_step / dt, peak,
                               (time.perf_counter() - t_start) / (done - start_step))
                loss_sum, loss_n, timed, t_log = torch.zeros(()), 0, 0, time.perf_counter()
            if self.snapshot_due(done):  # before the checkpoint: a resume from it finds the snapshots it needs
                weights = self.parallelism.weights(self.model)
                if self.rt.is_main:
                    rundir.save_weights(rundir.snapshot_path(self.run_dir, done), weights, self.model.loops,
                                        self.flops_at(done))
            if done % self.eval_every == 0 or done == self.steps:
                t_eval = time.perf_counter()
                blend = self.apply_average_blend() if done == self.steps else None
                record = self.evaluate(done)
                if blend is not None:
                    record[f"{self.averager.name}_blend"] = blend
                seconds = time.perf_counter() - t_eval
                self.state.eval_seconds += seconds
                self.log_eval(record, seconds)
                self.state.loss_sum, self.state.loss_n = loss_sum.item(), loss_n
                self.checkpoint(record)
                self.state.wall_seconds = wall0 + time.perf_counter() - t_start
                timed, t_log = 0, time.perf_counter()
            if done in self.cfg.train.branch_steps and done < self.steps:
                self.save_branch(done, loss_sum.item(), loss_n)
            if stop_at_step is not None and done >= stop_at_step:
                return None
        return self.summary()

    def save_branch(self, step: int, loss_sum: float, loss_n: int) -> None:
        """A full checkpoint of this step under branches/ (kept): a run of the same setting whose decay starts
        here continues from it (`scarce.runs.branch`). With it, the best weights so far and whether this run was
        compiled, so a branch checks that it would train the same way."""
        state = {**{k: v for k, v in vars(self.state).items() if k != "step"}, "loss_sum": loss_sum,
                 "loss_n": loss_n, "compiled": self.compiled}
        weights, optimizer = self.full_state()
        if not self.rt.is_main:
            return
        folder = ckpt.save_checkpoint(self.run_dir, step, weights, optimizer, state, 0, rundir.BRANCHES)
        best = rundir.best_weights(self.run_dir)
        if best.exists():
            shutil.copy2(best, folder / best.name)

    def summary(self) -> dict:
        best, last, s = self.state.best, self.state.last_eval, self.state
        summary = {
            "run_id": self.run_id, "val_loss": best["val_loss"], "val_bpb": best["val_bpb"],
            "select_loss": best["select_loss"], "select_bpb": best["select_bpb"], "best_step": best["step"],
            "final_val_loss": last["val_loss"], "final_select_loss": last["select_loss"],
            "params": self.params["total"], "non_embedding_params": self.params["non_embedding"],
            "tokens_seen": s.step * self.tokens_per_step, "flops": self.flops_at(s.step),
            "flops_per_token": self.flops_per_token, "steps": s.step,
            "epochs": s.step / self.loader.steps_per_epoch, "wall_seconds": s.wall_seconds,
            "eval_seconds": s.eval_seconds,
            "device": self.rt.device, "precision": self.rt.precision, "compiled": self.compiled,
            "data": self.store.fingerprint,
        }
        if isinstance(self.objective, Distillation):  # of "flops": the teachers' forward passes
            summary["teacher_flops"] = self.teacher_flops(s.step)
        branch = self.run_dir / rundir.BRANCH_RECORD
        if branch.exists():  # trained from a trunk's checkpoint (scarce.runs.branch): its time includes the trunk's
            summary["branched_from"] = json.loads(branch.read_text())
        if self.rt.is_main:
            atomic.write_json(self.run_dir / rundir.SUMMARY, summary)
        return summary

    # -- logging ----------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if not self.quiet and self.rt.is_main:
            print(text, flush=True)

    def log_header(self, peak: float) -> None:
        c, p = self.cfg, self.params
        self.say(f"run {self.run_id} -> {self.run_dir}")
        self.say(f"model depth {c.model.depth} width {c.model.d_model} heads {c.model.n_heads} | params "
                 f"{p['total']:,} ({p['non_embedding']:,} non-embedding) | {self.flops_per_token:.3g} FLOPs/token")
        self.say(f"device {self.rt.device} precision {self.rt.precision} compile {self.compiled} "
                 f"({self.compile_reason}) threads "
                 f"{torch.get_num_threads()} | peak {peak / 1e9:.0f} GFLOP/s | {self.steps} steps of "
                 f"{self.tokens_per_step:,} tokens ({self.steps / self.loader.steps_per_epoch:.2f} epochs)")

    def log_train(self, step: int, loss: float, tok_s: float, peak: float, sec_per_step: float) -> None:
        epoch = step / self.loader.steps_per_epoch
        lr = self.optimizer.param_groups[0]["lr"]
        mfu = tok_s * flops_per_token(self.model) / peak  # counts looped replays once they are on
        eta = sec_per_step * (self.steps - step)
        bar = progress_bar(step / self.steps)
        self.say(f"{bar} step {step}/{self.steps} | epoch {epoch:.2f} | loss {loss:.4f} | lr {lr:.2e} | "
                 f"{tok_s / 1e3:.1f}k tok/s | MFU {100 * mfu:.1f}% | ETA {format_seconds(eta)}")
        self.write_metric({"type": "train", "step": step, "epoch": epoch, "loss": loss, "lr": lr,
                           "tok_s": tok_s, "mfu": mfu, "wall_seconds": self.state.wall_seconds})
        scalars = {"train/loss": loss, "train/lr": lr, "train/tok_s": tok_s, "train/mfu": mfu, "train/epoch": epoch}
        if self.cfg.optim.grad_clip:
            scalars["train/grad_norm"] = self.grad_norm
        self.tracker.scalars(step, scalars)

    def log_eval(self, record: dict, seconds: float) -> None:
        self.say(f"eval step {record['step']} | select {record['select_loss']:.4f} ({record['select_bpb']:.4f} bpb) | "
                 f"val {record['val_loss']:.4f} ({record['val_bpb']:.4f} bpb) | {seconds:.1f}s, not in tok/s")
        self.write_metric(record)
        self.tracker.scalars(record["step"], {f"eval/{k}": v for k, v in record.items() if k not in ("type", "step")
                                              and isinstance(v, (int, float)) and not isinstance(v, bool)})

    def write_metric(self, record: dict) -> None:
        if self.rt.is_main:
            atomic.append_line(self.run_dir / rundir.METRICS, json.dumps(record))
