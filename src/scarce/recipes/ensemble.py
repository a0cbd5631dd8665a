"""Ensembles as runs: K members that differ by seed, a snapshot ensemble, and the ensemble-scaling and
joint (sizes x members) recipes. Every function here only produces configs and hands them to the
executor layer (`scarce.runs.launch`); evaluation of the trained members is `scarce.ensemble`'s.

K members: member k is the base config with seed base + k (init and data order, or only one of them),
trained into OUT/members/mKK and grouped in the run store under an ensemble id that leaves out K, so
a larger K extends an ensemble. With chain distillation member k learns from member k-1 (one teacher
in memory), so members train one after another.

Scaling: members of a size start from its certified single-model optimum (the regularized recipe) and
change it: by default twice the epochs and half the weight decay, since an ensemble averages away
variance that a single model has to regularize away. An ensemble of K members is the first K members
of the group, so K = 1..Kmax costs Kmax runs per size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scarce.config import ObjectiveConfig, RunConfig
from scarce.data.store import open_store
from scarce.device import pick_device
from scarce.ensemble import evaluate_ensemble, learned_prior, write_evaluation
from scarce.errors import UserError
from scarce.recipes.common import Context, recipe_row, run_points
from scarce.recipes.regularized import regularized
from scarce.rundir import Member, read_config, snapshot_members
from scarce.runs.launch import Job, absolute_paths, train_all
from scarce.scaling.paired import loss_difference

SEED_MODES = ("both", "init", "data")

# NanoGPT Slowrun's chain (unlimited track, records of 2026-03-07 and 2026-03-18): member k trains on
# (1 - 0.5) * CE + 0.5 * T^2 * KL(member k-1 || member k) at T = 1. Defaults of the chain only: a student's
# objective keeps ObjectiveConfig's, so the run ids of other distillation runs do not move.
CHAIN_ALPHA = 0.5
CHAIN_TEMPERATURE = 1.0


def member_config(base: RunConfig, k: int, group: str, seed_mode: str = "both") -> RunConfig:
    """Member k's config: the base with its own seed (init, data order or both) and the group labels."""
    if seed_mode not in SEED_MODES:
        raise UserError(f"seed mode must be one of {', '.join(SEED_MODES)}, got {seed_mode!r}")
    cfg = RunConfig.from_dict(base.to_dict())
    seed = base.train.seed + k
    if seed_mode in ("both", "data"):
        cfg.train.seed = seed
    if seed_mode != "both":  # the init seed differs from the data seed
        cfg.init.seed = seed if seed_mode == "init" else base.train.seed
    cfg.tags.update(group=group, member=k)
    return cfg


def ensemble_group(base: RunConfig, seed_mode: str, distill: dict | None, role: str = "members") -> str:
    """The ensemble id: a hash of what defines the members (not K, so a larger K extends an ensemble)."""
    probe = RunConfig.from_dict(base.to_dict())
    probe.tags.update(seed_mode=seed_mode, distill=distill or {}, role=role)
    return "ens-" + probe.run_id()[:12]


def distill_from(cfg: RunConfig, teachers: list, alpha: float, temperature: float,
                 combine: str = "logit") -> RunConfig:
    """A copy of `cfg` trained against the frozen `teachers` (objective section 'distill')."""
    try:
        objective = ObjectiveConfig("distill", [str(Path(t).resolve()) for t in teachers], alpha, temperature,
                                    combine)
    except ValueError as e:
        raise UserError(str(e)) from None
    return dataclasses.replace(RunConfig.from_dict(cfg.to_dict()), objective=objective)


def ensemble(base: RunConfig, members: int, out: str | Path, combine: str = "logit", executor=None,
             seed_mode: str = "both", chain_distill: bool = False, alpha: float = CHAIN_ALPHA,
             temperature: float = CHAIN_TEMPERATURE, results: str | None = None, quiet: bool = False, log=print,
             device: str = "cpu") -> dict:
    """Train (or reuse, or resume) K members into OUT/members/, evaluate every prefix on val and write
    OUT/ensemble.json; returns what it holds."""
    if members < 1:
        raise UserError("an ensemble needs at least 1 member")
    base = absolute_paths(base)
    out = Path(out)
    distill = {"alpha": alpha, "temperature": temperature} if chain_distill else None
    group = ensemble_group(base, seed_mode, distill)
    cfgs = [member_config(base, k, group, seed_mode) for k in range(members)]
    dirs = [out / "members" / f"m{k:02d}" for k in range(members)]
    if chain_distill:
        if executor is not None and executor.concurrent:
            log("note: chain distillation trains members one after another (member k needs k-1)")
        for k in range(members):
            cfg = cfgs[k] if k == 0 else distill_from(cfgs[k], [dirs[k - 1]], alpha, temperature)
            train_all([Job(cfg, dirs[k])], None, results, quiet)
    else:
        train_all([Job(c, d) for c, d in zip(cfgs, dirs)], executor, results, quiet)
    extra = {"group": group, "seed_mode": seed_mode, "chain_distill": chain_distill,
             **({"alpha": alpha, "temperature": temperature} if chain_distill else {})}
    return write_evaluation(out, [Member.of_run(d) for d in dirs], combine, base.train.batch_size, extra=extra,
                            device=device)


def snapshot_ensemble(cfg: RunConfig, every: int, out: str | Path, combine: str = "logit",
                      results: str | None = None, quiet: bool = False, device: str = "cpu") -> dict:
    """Train one run into OUT/run keeping a snapshot every `every` steps; evaluate the snapshots as an ensemble."""
    if every < 1:
        raise UserError("the snapshot interval must be >= 1 step")
    cfg = RunConfig.from_dict(cfg.to_dict())
    cfg.train.snapshot_every = every
    run_dir = Path(out) / "run"
    train_all([Job(cfg, run_dir)], None, results, quiet)
    return write_evaluation(out, snapshot_members(run_dir), combine, cfg.train.batch_size,
                            extra={"snapshots": str(run_dir), "snapshot_every": every}, device=device)


def evaluate_runs(out: str | Path, members: list[Member], combine: str = "logit", max_tokens: int = 0,
                  device: str = "cpu") -> dict:
    """The ensemble of existing runs (or snapshots), every prefix on val, written to OUT/ensemble.json."""
    return write_evaluation(out, members, combine, max_tokens=max_tokens, device=device)


def prior_report(members: list[Member], k_values=(), max_tokens: int = 0, device: str = "cpu") -> dict:
    """The learned prior of `members` (`scarce.ensemble.learned_prior`: fitted on the first member's store's
    select split, the top-K mixture of lowest select loss reported once on val) beside the uniform probability
    average of the same members, with the paired val difference and its block-bootstrap interval."""
    cfg = read_config(members[0].run_dir)
    store = open_store(cfg.data)
    r = learned_prior(members, store.split("select"), store.split("val"), cfg.model.seq_len, k_values,
                      cfg.train.batch_size, max_tokens, device)
    gain = loss_difference(r["uniform_window_nll"], r["prior_window_nll"], r["window_tokens"])
    return {"combine": r["combine"], "k": r["k"], "k_values": r["k_values"], "select_loss": r["select_loss"],
            "select_loss_uniform": r["select_loss_uniform"], "val_loss": r["val_loss"],
            "val_loss_uniform": r["val_loss_uniform"], "gain": gain,
            "members": [{"run_dir": str(m.run_dir), "weights": str(m.weights), "weight": w,
                         "chosen": i in r["members"]} for i, (m, w) in enumerate(zip(members, r["weights"]))],
            "fitted_on": "select", "data": str(store.path)}


# ---------------------------------------------------------------------------------------------
# Ensemble scaling and the joint (sizes x members) grid

def member_points(depth: int, base: dict, members: int, epochs_factor: float, wd_factor: float) -> list[dict]:
    return [{"model.depth": depth, "optim.lr": base["optim.lr"],
             "optim.weight_decay": base["optim.weight_decay"] * wd_factor,
             "train.epochs": base["train.epochs"] * epochs_factor, "train.seed": k,
             "tags.group": f"ensemble-d{depth}", "tags.member": k} for k in range(members)]


def ensemble_scaling(ctx: Context, members: int = 4, epochs_factor: float = 2.0, wd_factor: float = 0.5,
                     base: dict | None = None, evaluate: bool = True, sweep: str = "ensemble") -> dict:
    """Per size, `members` member runs and (with `evaluate`) the val loss of each K-member ensemble;
    `base` maps depth -> {optim.lr, optim.weight_decay, train.epochs} (default: the regularized
    recipe's certified optimum, run first and resumable)."""
    if base is None:
        found = regularized(ctx)["best"]
        base = {d: r["best"] for d, r in found.items()}
    per_size = {}
    for depth in ctx.sizes:
        start = base.get(depth) or base.get(str(depth))  # JSON options have string keys
        if not start:
            raise UserError(f"recipe {sweep}: no base config for depth {depth} in {sorted(base)}")
        rows = run_points(ctx, sweep, member_points(depth, start, members, epochs_factor, wd_factor))
        runs = [recipe_row(r) for r in rows]
        per_size[depth] = {"base": start, "members": runs, "group": f"ensemble-d{depth}",
                           "ensembles": {k: [r["run_dir"] for r in runs[:k] if r] for k in range(1, members + 1)}}
        if evaluate and all(runs):
            per_size[depth]["val_loss"] = dict(zip(range(1, members + 1), ensemble_losses(ctx, runs)))
    return {"recipe": "ensemble", "sweep": sweep, "best": per_size}


def ensemble_losses(ctx: Context, runs: list[dict]) -> list[float]:
    """Val loss (nats/token, logit averaging) of the first K members, K = 1..len(runs), in one pass."""
    store = open_store(ctx.data)
    cfg = read_config(runs[0]["run_dir"])
    device = pick_device()
    result = evaluate_ensemble([Member.of_run(r["run_dir"]) for r in runs], store.split("val"), store.token_bytes(),
                               cfg.model.seq_len, cfg.train.batch_size, cfg.train.eval_tokens, device=device)
    return result["prefix_loss"]


def joint(ctx: Context, members: int = 4, epochs_factor: float = 2.0, wd_factor: float = 0.5,
          base: dict | None = None, evaluate: bool = True) -> dict:
    """Sizes x K members: the grid of the two-step joint fit; `joint.csv` has its columns (params,
    members, loss = the ensemble's val loss) and the member run folders of each ensemble."""
    out = ensemble_scaling(ctx, members, epochs_factor, wd_factor, base, evaluate, sweep="joint")
    table = [{"depth": d, "params": (r["members"][0] or {}).get("params"), "members": k,
              "loss": r.get("val_loss", {}).get(k), "run_dirs": " ".join(dirs)}
             for d, r in out["best"].items() for k, dirs in r["ensembles"].items()]
    return {**out, "recipe": "joint", "table": table}
