"""IsoFLOP profiles (Chinchilla approaches 2 and 3) and the miniseries.

IsoFLOP: for each compute budget C and each depth, one run whose horizon is set by the budget,
tokens = C / FLOPs-per-token(depth); each budget's curve of loss against size has a minimum, the
compute-optimal size (approach 2), and all runs together feed the parametric fit (approach 3).
Miniseries (the nanochat pattern): one model per depth at a fixed tokens:params ratio.
"""

from __future__ import annotations

import torch

from scarce.data.store import open_store
from scarce.errors import UserError
from scarce.model.gpt import GPT, flops_per_token
from scarce.recipes.common import Context, point_config, recipe_row, run_points
from scarce.train.trainer import resolve_config


def flops_per_token_at(ctx: Context, depth: int) -> float:
    """Training FLOPs per token of the base config at `depth` (the model is built on the meta device)."""
    cfg = point_config({"model.depth": depth}, data=ctx.data, preset=ctx.preset, overrides=ctx.overrides)
    cfg = resolve_config(cfg, open_store(ctx.data))
    with torch.device("meta"):
        return flops_per_token(GPT(cfg.model))


def isoflop_points(ctx: Context, budgets: list[float]) -> list[dict]:
    fpt = {d: flops_per_token_at(ctx, d) for d in ctx.sizes}
    return [{"model.depth": d, "train.tokens": int(c / fpt[d]), "tags.budget": c}
            for c in sorted(budgets) for d in ctx.sizes]


def isoflop(ctx: Context, budgets: list[float] | None = None, sweep: str = "isoflop") -> dict:
    """Budgets x depths; per budget the best run on select. `table` has the columns `scarce fit
    chinchilla` reads (params, tokens, flops, loss)."""
    if not budgets:
        raise UserError("recipe isoflop needs compute budgets: the option budgets, e.g. [1e12, 3e12, 1e13]")
    points = isoflop_points(ctx, budgets)
    rows = run_points(ctx, sweep, points)
    table = [{"budget": p["tags.budget"], "depth": p["model.depth"], **_fit_row(r)}
             for p, r in zip(points, rows) if r is not None]
    best = {}
    for row in table:
        if row["budget"] not in best or row["select_loss"] < best[row["budget"]]["select_loss"]:
            best[row["budget"]] = row
    return {"recipe": "isoflop", "sweep": sweep, "best": best, "table": table,
            "failed": sum(r is None for r in rows)}


def miniseries(ctx: Context, ratio: float = 20.0, sweep: str = "miniseries") -> dict:
    """One run per depth at tokens = ratio x params."""
    points = [{"model.depth": d, "train.tokens_per_param": ratio} for d in ctx.sizes]
    rows = run_points(ctx, sweep, points)
    return {"recipe": "miniseries", "sweep": sweep, "best": {d: recipe_row(r) for d, r in zip(ctx.sizes, rows)},
            "table": [{"depth": d, **_fit_row(r)} for d, r in zip(ctx.sizes, rows) if r is not None]}


def _fit_row(row: dict) -> dict:
    s = row.summary
    return {"params": s["params"], "tokens": s["tokens_seen"], "flops": s["flops"], "loss": s["val_loss"],
            "select_loss": s["select_loss"], "run_id": row.id}

