"""The regularized recipe: per size, certified coordinate descent over (LR, weight decay, epochs) on a
grid, judged on the select split. Fixed-data pretraining wants far more weight decay (10-30x the
usual 0.1) and more epochs than the standard recipe; the descent finds how much, per size, and the
certificate shows that every one-step neighbour was trained and none is better. The sizes descend in
lockstep, so each round's runs of every size go to the executor as one batch."""

from __future__ import annotations

from scarce.recipes.common import Context, brief, descent_loss, run_points
from scarce.recipes.descent import Descent, run_descents

LRS = [1e-3, 2e-3, 4e-3, 8e-3]
WEIGHT_DECAYS = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
EPOCHS = [1, 2, 4, 8, 16]
AXES = ("optim.lr", "optim.weight_decay", "train.epochs")


def regularized(ctx: Context, lrs: list[float] = LRS, weight_decays: list[float] = WEIGHT_DECAYS,
                epochs: list[float] = EPOCHS, start: dict | None = None, sweep: str = "regularized") -> dict:
    """Per size: the certified optimum, the descent path and the certificate (runs of sweep `sweep`)."""
    axes = dict(zip(AXES, (sorted(lrs), sorted(weight_decays), sorted(epochs))))
    chosen: dict[str, dict] = {}

    def evaluate(points: list[dict]) -> list[float]:
        rows = run_points(ctx, sweep, points, diverged=True)
        for p, r in zip(points, rows):
            chosen[_key(p)] = r if r is not None and r["status"] == "done" else None
        return [descent_loss(r) for r in rows]

    results = run_descents([Descent(axes, start) for _ in ctx.sizes], evaluate,
                           tag=lambda k, p: {"model.depth": ctx.sizes[k], **p})
    per_size = {}
    for depth, result in zip(ctx.sizes, results):
        per_size[depth] = {**result, "run": brief(chosen.get(_key({"model.depth": depth, **result["best"]})))}
        ctx.log(f"regularized depth {depth}: {'certified' if result['certified'] else 'NOT certified'} at "
                f"{result['best']} select {result['loss']:.4f} after {result['evaluations']} runs")
    return {"recipe": "regularized", "sweep": sweep, "best": per_size}


def _key(point: dict) -> str:
    return repr(sorted(point.items()))
