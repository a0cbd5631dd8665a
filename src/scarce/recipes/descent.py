"""Certified coordinate descent on a grid.

Start at a grid point; train all of its one-step neighbours (one index up or down along each axis);
if none is better, the point is certified: a local optimum of the grid, with the evidence recorded.
Otherwise move to the best neighbour and repeat. Each round's neighbours are evaluated as one batch,
so they run in parallel, and nothing is evaluated twice. `Descent` is the same search as a state
machine, so that several descents (one per model size) can share each round's batch.
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


class Descent:
    """One certified descent on the grid `axes` (name -> ordered values) from `start` (default: each
    axis's middle). Loop: `points = d.pending()`; evaluate them; `d.tell(points, losses)`; until
    `d.pending()` is empty; then `d.result()`. A diverged point has loss +inf (worse than any that
    trained); a failed one has loss nan (unknown: never chosen, and it leaves a neighbour uncertified)."""

    def __init__(self, axes: dict[str, list], start: dict | None = None, max_rounds: int = 100):
        self.names, self.shape, self.axes = list(axes), [len(v) for v in axes.values()], axes
        self.current = tuple(axes[n].index(start[n]) if start else len(axes[n]) // 2 for n in self.names)
        self.losses: dict[Index, float] = {}
        self.path: list[dict] = []
        self.rounds_left, self.finished = max_rounds, False

    def point(self, idx: Index) -> dict:
        return {n: self.axes[n][i] for n, i in zip(self.names, idx)}

    def _index(self, point: dict) -> Index:
        return tuple(self.axes[n].index(point[n]) for n in self.names)

    def pending(self) -> list[dict]:
        """The points this descent needs evaluated next (empty once it has finished)."""
        while not self.finished:
            if self.current not in self.losses:
                return [self.point(self.current)]
            if not self.path:
                self.path.append({"point": self.point(self.current), "loss": self.losses[self.current]})
            around = [i for i in neighbours(self.current, self.shape) if i not in self.losses]
            if around:
                return [self.point(i) for i in around]
            self._step()
        return []

    def _step(self) -> None:
        around = neighbours(self.current, self.shape)
        best = min(around, key=lambda i: _known(self.losses[i]), default=self.current)
        if not around or _known(self.losses[best]) >= _known(self.losses[self.current]) or self.rounds_left <= 0:
            self.finished = True
            return
        self.rounds_left -= 1
        self.current = best
        self.path.append({"point": self.point(best), "loss": self.losses[best]})

    def tell(self, points: list[dict], losses: list[float]) -> None:
        for p, loss in zip(points, losses):
            self.losses[self._index(p)] = loss

    def result(self) -> dict:
        """{best, loss, path, certificate, certified, evaluations}: `certificate` lists the final point's
        neighbours and their losses; `certified` is True when every neighbour trained and none is better
        (a failed neighbour leaves the point uncertified; a diverged one is simply worse)."""
        around = neighbours(self.current, self.shape)
        loss = self.losses[self.current]
        certificate = [{"point": self.point(i), "loss": self.losses[i]} for i in around]
        certified = all(self.losses[i] >= loss for i in around)  # False for a nan (failed) neighbour
        return {"best": self.point(self.current), "loss": loss, "path": self.path, "certificate": certificate,
                "certified": certified and loss < float("inf"), "evaluations": len(self.losses)}


def certified_descent(axes: dict[str, list], evaluate: Callable[[list[dict]], list[float]],
                      start: dict | None = None, max_rounds: int = 100) -> dict:
    """Descend on the grid `axes` from `start`; `evaluate(points) -> losses` trains a batch of points.
    Returns `Descent.result()`."""
    return run_descents([Descent(axes, start, max_rounds)], evaluate)[0]


def run_descents(descents: list[Descent], evaluate: Callable[[list[dict]], list[float]],
                 tag: Callable[[int, dict], dict] = lambda k, p: p) -> list[dict]:
    """Run several descents in lockstep: each round evaluates every descent's pending points as one batch
    (`tag(k, point)` makes descent k's point distinct, e.g. by adding its model size)."""
    while True:
        batch = [(k, p) for k, d in enumerate(descents) for p in d.pending()]
        if not batch:
            return [d.result() for d in descents]
        losses = evaluate([tag(k, p) for k, p in batch])
        for k, d in enumerate(descents):
            mine = [(p, loss) for (j, p), loss in zip(batch, losses) if j == k]
            d.tell([p for p, _ in mine], [loss for _, loss in mine])


def _known(loss: float) -> float:
    """A loss for ranking: a failed point's nan ranks last."""
    return float("inf") if loss != loss else loss
