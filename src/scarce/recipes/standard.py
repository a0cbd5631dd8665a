"""The standard recipe: weight decay fixed at 0.1 (the usual setting); epochs and learning rate tuned
per size on the select split. Also the data-scaling recipe: the standard recipe at several training-set
sizes (nested token stores cut from one store), feeding the reference law for data efficiency."""

from __future__ import annotations

from pathlib import Path

from scarce.data.prepare import derive_store
from scarce.data.store import open_store
from scarce.recipes.common import Context, best, recipe_row, run_points

LRS = [1e-3, 2e-3, 4e-3, 8e-3]
EPOCHS = [1, 2, 4, 8]


def standard_points(sizes: list[int], lrs: list[float], epochs: list[float], weight_decay: float = 0.1) -> list[dict]:
    return [{"model.depth": d, "optim.lr": lr, "optim.weight_decay": weight_decay, "train.epochs": e}
            for d in sizes for e in epochs for lr in lrs]


def standard(ctx: Context, lrs: list[float] = LRS, epochs: list[float] = EPOCHS, weight_decay: float = 0.1,
             sweep: str = "standard", data: str | None = None) -> dict:
    """Train sizes x epochs x LRs at fixed weight decay; per size, the run best on select."""
    points = standard_points(ctx.sizes, lrs, epochs, weight_decay)
    rows = run_points(ctx, sweep, points, data)
    per_size = {}
    for d in ctx.sizes:
        mine = [r for p, r in zip(points, rows) if p["model.depth"] == d]
        chosen = best(mine)
        per_size[d] = {**(recipe_row(chosen) or {}), "config": _knobs(chosen), "failed": sum(r is None for r in mine)}
    return {"recipe": "standard", "sweep": sweep, "best": per_size}


def _knobs(row: dict | None) -> dict | None:
    if row is None:
        return None
    c = row.config
    return {"optim.lr": c.optim.lr, "optim.weight_decay": c.optim.weight_decay, "train.epochs": c.train.epochs}


def data_scaling(ctx: Context, data_sizes: list[int] | None = None, lrs: list[float] = LRS,
                 epochs: list[float] = EPOCHS) -> dict:
    """The standard recipe on nested training sets: the first n train tokens of the store, for each n
    (the select and val splits are shared, so losses are comparable)."""
    base = open_store(ctx.data)
    held = base.split_tokens("train")
    data_sizes = data_sizes or [held // 4, held // 2, held]
    results = {}
    for n in sorted(data_sizes):
        store = base if n == held else derive_store(base, Path(ctx.out) / "stores" / f"train-{n}", n, log=ctx.log)
        results[n] = standard(ctx, lrs, epochs, data=str(store.path), sweep="data-scaling")["best"]
    table = []
    for n, per_size in results.items():  # the reference law: the best model at each data size
        done = [(d, r) for d, r in per_size.items() if r.get("run_id")]
        if done:
            d, r = min(done, key=lambda dr: dr[1]["select_loss"])
            table.append({"tokens": n, "loss": r["val_loss"], "depth": d, "params": r["params"], "run_id": r["run_id"]})
    return {"recipe": "data-scaling", "sweep": "data-scaling", "best": results, "table": table}

