"""Certified coordinate descent on a grid.

Start at a grid point; train all of its one-step neighbours (one index up or down along each axis);
if none is better, the point is certified: a local optimum of the grid, with the evidence recorded.
Otherwise move to the best neighbour and repeat. Each round's neighbours are evaluated as one batch,
so they run in parallel, and nothing is evaluated twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Index = tuple[int, ...]


def neighbours(index: Index, shape: Sequence[int]) -> list[Index]:
    out = []
    for axis, i in enumerate(index):
        for j in (i - 1, i + 1):
            if 0 <= j < shape[axis]:
                out.append(index[:axis] + (j,) + index[axis + 1:])
    return out


def certified_descent(axes: dict[str, list], evaluate: Callable[[list[dict]], list[float]],
                      start: dict | None = None, max_rounds: int = 100) -> dict:
    """Descend on the grid `axes` (name -> ordered values) from `start` (default: each axis's middle).

    `evaluate(points) -> losses` trains a batch of points ({name: value}); a failed point has loss
    inf. Returns {best, loss, path, certificate, certified, evaluations}: `certificate` lists the
    final point's neighbours and their losses; `certified` is True when every neighbour trained and
    none is better (a failed neighbour leaves the point uncertified).
    """
    names, shape = list(axes), [len(v) for v in axes.values()]
    point = lambda idx: {n: axes[n][i] for n, i in zip(names, idx)}
    current = tuple(axes[n].index(start[n]) if start else len(axes[n]) // 2 for n in names)
    losses: dict[Index, float] = {}

    def ensure(indices: list[Index]) -> None:
        new = [i for i in dict.fromkeys(indices) if i not in losses]
        if new:
            losses.update(zip(new, evaluate([point(i) for i in new])))

    ensure([current])
    path = [{"point": point(current), "loss": losses[current]}]
    for _ in range(max_rounds):
        around = neighbours(current, shape)
        ensure(around)
        best = min(around, key=lambda i: losses[i], default=current)
        if not around or losses[best] >= losses[current]:
            break
        current = best
        path.append({"point": point(current), "loss": losses[current]})
    around = neighbours(current, shape)
    ensure(around)  # only when the rounds ran out: the certificate needs every neighbour
    certificate = [{"point": point(i), "loss": losses[i]} for i in around]
    certified = all(losses[i] < float("inf") and losses[i] >= losses[current] for i in around)
    return {"best": point(current), "loss": losses[current], "path": path, "certificate": certificate,
            "certified": certified and losses[current] < float("inf"), "evaluations": len(losses)}
