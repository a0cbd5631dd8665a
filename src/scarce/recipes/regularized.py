"""The regularized recipe: per size, certified coordinate descent over (LR, weight decay, epochs) on a
grid, judged on the select split. Fixed-data pretraining wants far more weight decay (10-30x the
usual 0.1) and more epochs than the standard recipe; the descent finds how much, per size, and the
certificate shows that every one-step neighbour was trained and none is better. The sizes descend in
lockstep, so each round's runs of every size go to the executor as one batch."""

from __future__ import annotations

from collections.abc import Callable

from scarce.recipes.common import Context, descent_loss, recipe_row, run_points
from scarce.recipes.descent import Descent, run_descents
from scarce.runs.store import RunRow

LRS = [1e-3, 2e-3, 4e-3, 8e-3]
WEIGHT_DECAYS = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
EPOCHS = [1, 2, 4, 8, 16]
AXES = ("optim.lr", "optim.weight_decay", "train.epochs")


def regularized(ctx: Context, lrs: list[float] = LRS, weight_decays: list[float] = WEIGHT_DECAYS,
                epochs: list[float] = EPOCHS, start: dict | None = None, sweep: str = "regularized",
                max_rounds: int = 100) -> dict:
    """Per size: the certified optimum, the descent path and the certificate (runs of sweep `sweep`)."""
    chosen, _ = descend(ctx.sizes, axes(lrs, weight_decays, epochs), start, max_rounds,
                        lambda points: run_points(ctx, sweep, points, diverged=True, branch_epochs=epochs))
    per_size = {}
    for depth, c in chosen.items():
        result = c["descent"]
        per_size[depth] = {**result, "run": recipe_row(c["row"] if c["row"] and c["row"].status == "done" else None)}
        ctx.log(f"regularized depth {depth}: {'certified' if result['certified'] else 'NOT certified'} at "
                f"{result['best']} select {result['loss']:.4f} after {result['evaluations']} runs")
    return {"recipe": "regularized", "sweep": sweep, "best": per_size}


def axes(lrs=LRS, weight_decays=WEIGHT_DECAYS, epochs=EPOCHS) -> dict[str, list]:
    """The descent's grid: each axis sorted."""
    return dict(zip(AXES, (sorted(lrs), sorted(weight_decays), sorted(epochs))))


def descend(sizes: list[int], grid: dict[str, list], start: dict | None, max_rounds: int,
            run: Callable[[list[dict]], list[RunRow | None]], base: dict | None = None,
            stack: dict | None = None) -> tuple[dict, list[RunRow]]:
    """The recipe's search, given a way to `run` points (a list of override sets -> run-store rows, diverged
    rows included): a certified descent per size over `grid` from `start`, the sizes in lockstep, every point
    trained with the overrides `base`. With `stack` (e.g. the slowrun architecture overrides) each size's chosen
    setting is also trained with them and kept where select prefers it. Returns depth -> {point, row, descent}
    and every finished run tried (each run once)."""
    base = base or {}
    tried: dict[str, tuple[dict, RunRow | None]] = {}

    def evaluate(points: list[dict]) -> list[float]:
        rows = run([{**base, **q} for q in points])
        for q, r in zip(points, rows):
            tried[_key(q)] = (q, r)
        return [descent_loss(r) for r in rows]

    descents = run_descents([Descent(grid, start, max_rounds) for _ in sizes], evaluate,
                            tag=lambda k, q: {"model.depth": sizes[k], **q})
    chosen = {}
    for depth, d in zip(sizes, descents):
        point, row = tried[_key({"model.depth": depth, **d["best"]})]
        chosen[depth] = {"point": {**base, **point}, "row": row, "descent": d}
    if stack:
        stacked = run([{**c["point"], **stack} for c in chosen.values()])
        for (depth, c), row in zip(list(chosen.items()), stacked):
            tried[_key({**c["point"], **stack})] = (c["point"], row)
            if row is not None and descent_loss(row) < c["row"].select_loss:
                chosen[depth] = {**c, "point": {**c["point"], **stack}, "row": row}
    done = [row for _, row in tried.values() if row is not None and row.status == "done"]
    return chosen, list({r.id: r for r in done}.values())


def _key(point: dict) -> str:
    return repr(sorted((k, v) for k, v in point.items() if k not in ("data", "tags.stage")))
