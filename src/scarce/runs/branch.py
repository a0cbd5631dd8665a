"""Epoch grids by branching: runs of one setting that differ only in their horizon share their stable phase.

Under a warmup-stable-decay schedule with no warmup (or none that depends on the horizon), a run of T steps trains
at the peak rate until its decay starts at step T - int(warmdown_frac·T), and everything it does before then (data
order, dropout masks, learning rate, weight decay) is a function of the step alone. So a run of E epochs is, up
to its decay point, the run of the longest horizon of its setting: the longest run (the trunk) keeps a full
checkpoint at each shorter run's decay point (`train.branch_steps`, not part of its id), and each shorter run
starts from that checkpoint and trains only its own decay. It keeps its own run id, folder, metrics and row, and
resumes like any run; on CPU it ends bit-identical to the same run trained alone (tests/runs/test_branch.py).

A setting qualifies when nothing before the decay depends on the horizon: `not_branchable` names what does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scarce import atomic, rundir
from scarce.config import RunConfig
from scarce.data.store import open_store
from scarce.errors import UserError
from scarce.runs.store import RunStore
from scarce.train import checkpoint as ckpt
from scarce.train.trainer import build_loader, total_steps

HORIZON = ("epochs", "tokens", "tokens_per_param", "branch_steps")
"""The train fields in which runs of one family differ."""


def not_branchable(cfg: RunConfig) -> str | None:
    """Why runs of this config cannot share a stable phase with others of its setting, or None when they can."""
    o, t = cfg.optim, cfg.train
    reasons = [(o.schedule != "wsd", f"optim.schedule is {o.schedule}, not wsd"),
               (o.warmup_frac > 0, "optim.warmup_frac > 0 (warmup is a fraction of each run's own steps)"),
               (o.wd_schedule in ("cosine", "record"), f"optim.wd_schedule {o.wd_schedule} spans the whole horizon"),
               (o.swa_epochs > 0, "optim.swa_epochs cycles the rate from a number of epochs before the end"),
               (bool(o.ema_decay or o.avg_last), "a weight average (optim.ema_decay or avg_last) spans the horizon"),
               (cfg.model.loop_range is not None, "looping switches on at a fraction of the horizon"),
               (t.eval_every <= 0, "train.eval_every 0 evaluates at a fraction of the horizon"),
               (t.compile == "auto", "train.compile auto decides from the horizon"),
               (t.snapshot_every > 0, "train.snapshot_every keeps snapshots the branch would not have"),
               (bool(t.tokens_per_param), "a tokens:params horizon"),
               (o.warmdown_frac <= 0, "optim.warmdown_frac 0 has no decay to branch")]
    return next((why for bad, why in reasons if bad), None)


def family(cfg: RunConfig, fingerprint: str) -> str:
    """What runs of one setting share: the config with its horizon left out, on one token store."""
    d = cfg.to_dict()
    for name in HORIZON:
        d["train"].pop(name, None)
    d["data"] = fingerprint
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def horizon_steps(cfg: RunConfig) -> int:
    """The number of steps a (resolved) config trains for, as its trainer counts them."""
    store = open_store(cfg.data)
    return total_steps(cfg, build_loader(cfg, store, 0, 1), 0)


def decay_start(cfg: RunConfig, steps: int) -> int:
    """The first step of a run of `steps` steps whose learning rate is below the peak (`lr_multiplier`'s wsd)."""
    return steps - int(cfg.optim.warmdown_frac * steps)


@dataclass
class BranchPlan:
    """Which runs of a batch are trunks (and the checkpoints they keep) and which branch from which."""

    trunk_steps: dict[int, list[int]] = field(default_factory=dict)
    """Index of a trunk -> the steps it keeps checkpoints at."""
    branches: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Index of a shorter run -> (index of its trunk, the step it starts from)."""


def plan_branches(configs: list[RunConfig], fingerprints: list[str], steps: list[int]) -> BranchPlan:
    """Group runs of one setting (`family`) and let each shorter run branch from the longest at its decay start.
    A run that would start at step 0 (nothing to share) or whose setting does not qualify trains alone."""
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        if not_branchable(cfg) is None:
            groups.setdefault(family(cfg, fingerprints[i]), []).append(i)
    plan = BranchPlan()
    for members in groups.values():
        trunk = max(members, key=lambda i: steps[i])
        for i in members:
            start = decay_start(configs[i], steps[i])
            if i != trunk and 0 < start <= decay_start(configs[trunk], steps[trunk]) and steps[i] < steps[trunk]:
                plan.branches[i] = (trunk, start)
                plan.trunk_steps.setdefault(trunk, []).append(start)
    for i in plan.trunk_steps:
        plan.trunk_steps[i] = sorted(set(plan.trunk_steps[i]))
    return plan


def kept_checkpoints(folders) -> list[Path]:
    """The branch checkpoints kept in run folders (complete ones: a state.json written last)."""
    return [c for f in folders for c in Path(f, rundir.BRANCHES).glob("step_*") if (c / "state.json").is_file()]


def furthest(checkpoints: list[Path], limit: int) -> Path | None:
    """The checkpoint of the latest step at or before `limit` (a run's decay start), if any."""
    usable = [c for c in checkpoints if 0 < int(c.name.removeprefix("step_")) <= limit]
    return max(usable, key=lambda c: int(c.name.removeprefix("step_")), default=None)


def later_starts(cfg: RunConfig, epochs) -> list[int]:
    """The decay starts of runs of `cfg`'s setting at each of `epochs` shorter than its own horizon (an epoch
    horizon; none for a horizon in tokens)."""
    if cfg.train.tokens or not cfg.train.epochs:
        return []
    starts = []
    for e in sorted({float(e) for e in epochs if 0 < float(e) < cfg.train.epochs}):
        shorter = RunConfig.from_dict(cfg.to_dict())
        shorter.train.epochs = e
        steps = horizon_steps(shorter)
        starts.append(min(decay_start(shorter, steps), steps - 1))
    return [s for s in starts if s > 0]


def phases(points: list[tuple[RunConfig, str, Path]], pending: list[int], store: RunStore, later_epochs=()):
    """The pending points (indices into `points`: (resolved config, store fingerprint, run folder)) as two
    phases, each a function returning [(index, config to run, checkpoint to start from or "")]: first the runs
    that do not wait for another (each trunk keeping checkpoints at its shorter runs' decay starts, every run at
    its own and at those of `later_epochs` shorter than it, for runs of later batches; a run whose setting has a
    kept checkpoint before its decay start, from any earlier run in the store, starts from the furthest), then
    the shorter runs of this batch, from their trunk's. Closes `store`."""
    configs = [c for c, _, _ in points]
    ok = [not_branchable(c) is None for c in configs]
    if not any(ok[i] for i in pending):  # e.g. a cosine schedule: nothing to plan, the store is not read
        store.close()
        return (lambda: [(i, configs[i], "") for i in pending]), (lambda: [])
    steps = [horizon_steps(c) if good else 0 for c, good in zip(configs, ok)]
    plan = plan_branches(configs, [f for _, f, _ in points], steps)
    families = {i: family(configs[i], points[i][1]) for i in range(len(points)) if ok[i]}
    try:
        kept = {}
        for row in store.list():
            cfg = row.config
            if not_branchable(cfg) is None:
                kept.setdefault(family(cfg, row.data or ""), set()).add(row.run_dir)
    finally:
        store.close()

    def start_of(i: int, extra=()) -> str:
        if not ok[i]:
            return ""
        limit = min(decay_start(configs[i], steps[i]), steps[i] - 1)  # a run with no decay steps trains its last
        found = furthest(kept_checkpoints([*kept.get(families[i], ()), *extra]), limit)
        return str(found) if found else ""

    def keeping(i: int) -> RunConfig:
        if not ok[i]:
            return configs[i]
        cfg = RunConfig.from_dict(configs[i].to_dict())
        cfg.train.branch_steps = sorted({*plan.trunk_steps.get(i, []), decay_start(cfg, steps[i]),
                                         *later_starts(cfg, later_epochs)})
        return cfg

    first = [i for i in pending if i not in plan.branches]
    second = [i for i in pending if i in plan.branches]
    return (lambda: [(i, keeping(i), start_of(i)) for i in first],
            lambda: [(i, configs[i], start_of(i, [points[plan.branches[i][0]][2]])) for i in second])


def _step(checkpoint: Path) -> int:
    try:
        return int(checkpoint.name.removeprefix("step_"))
    except ValueError:
        return -1


def verified(checkpoint: Path, warn: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> Path | None:
    """The branch checkpoint to seed a run from: `checkpoint` when every file of it matches its digest (weights,
    optimizer state, trainer state, the best weights so far), else the latest earlier one its trunk kept that does,
    else None (the run trains from step 0). A damaged file costs a warning naming it and some recomputation, never
    the run: the stable phase is a function of the step alone, so any earlier start ends at the same weights."""
    earlier = sorted((c for c in kept_checkpoints([checkpoint.parent.parent]) if 0 < _step(c) < _step(checkpoint)),
                     key=_step, reverse=True)
    problems = []
    for candidate in [checkpoint, *earlier]:
        try:
            ckpt.load_verified(candidate)
            if (best := candidate / "best.safetensors").exists():
                rundir.load_weights(best)
        except UserError as e:
            problems.append(f"{candidate}: {e}")
            continue
        if problems:
            warn(f"warning: branch checkpoint {'; '.join(problems)}; starting from {candidate.name} instead")
        return candidate
    warn(f"warning: branch checkpoint {'; '.join(problems)}; no earlier kept checkpoint verifies, so the run "
         "trains from step 0")
    return None


def seed_branch(run_dir: Path, checkpoint: Path, limit: int, compiled: bool) -> None:
    """Start the run in `run_dir` (nothing trained yet) from another run's stable-phase `checkpoint`, of a step
    at or before `limit` (this run's decay start): it becomes the run's own latest checkpoint, with that run's best
    weights so far and its metrics (which the trainer's restore cuts back to the step, as on any resume)."""
    try:
        state = json.loads((checkpoint / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"branch checkpoint {checkpoint}: unreadable ({e})") from None
    step = state.get("step")
    if not isinstance(step, int) or not 0 < step <= limit:
        raise UserError(f"branch checkpoint {checkpoint} is of step {step}, past this run's decay start {limit}")
    if bool(state.get("compiled")) != compiled:
        raise UserError(f"branch checkpoint {checkpoint}: the trunk was {'' if state.get('compiled') else 'not '}"
                        f"compiled and this run would {'' if compiled else 'not '}be")
    ckdir = Path(run_dir) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    target = ckdir / checkpoint.name
    tmp = ckdir / f".{checkpoint.name}.branch"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)  # a seeding cut short before the run's config was written
    shutil.copytree(checkpoint, tmp, ignore=shutil.ignore_patterns("best.safetensors"))
    tmp.rename(target)
    atomic.write_json(ckdir / "latest.json", {"step": step, "dir": target.name})
    best = checkpoint / "best.safetensors"
    if best.exists():
        shutil.copy2(best, rundir.best_weights(run_dir))
    trunk = checkpoint.parent.parent
    shutil.copy2(trunk / rundir.METRICS, Path(run_dir) / rundir.METRICS)  # the resume cuts it back to the step
    atomic.write_json(Path(run_dir) / rundir.BRANCH_RECORD,
                      {"trunk": str(trunk), "step": step, "wall_seconds": state.get("wall_seconds", 0.0)})
