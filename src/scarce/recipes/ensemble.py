"""Ensemble scaling and the joint (sizes x members) grid.

Members of a size start from its certified single-model optimum (the regularized recipe) and change
it: by default twice the epochs and half the weight decay, since an ensemble averages away variance
that a single model has to regularize away. Member k differs by its seed (init and data order). An
ensemble of K members is the first K members of the group, so K = 1..Kmax costs Kmax runs per size.
"""

from __future__ import annotations

from scarce.errors import UserError
from scarce.recipes.common import Context, brief, run_points
from scarce.recipes.regularized import regularized


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
        runs = [brief(r) for r in rows]
        per_size[depth] = {"base": start, "members": runs, "group": f"ensemble-d{depth}",
                           "ensembles": {k: [r["run_dir"] for r in runs[:k] if r] for k in range(1, members + 1)}}
        if evaluate and all(runs):
            per_size[depth]["val_loss"] = dict(zip(range(1, members + 1), ensemble_losses(ctx, runs)))
    return {"recipe": "ensemble", "sweep": sweep, "best": per_size}


def ensemble_losses(ctx: Context, runs: list[dict]) -> list[float]:
    """Val loss (nats/token, logit averaging) of the first K members, K = 1..len(runs), in one pass."""
    import torch

    from scarce.data.store import open_store
    from scarce.ensemble import Member, evaluate_ensemble, read_config

    store = open_store(ctx.data)
    cfg = read_config(runs[0]["run_dir"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
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
