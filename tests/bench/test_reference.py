"""The reference grid grows where its best run sat at the most epochs tried; where it cannot grow, the edge is a
warning with how far it could move the headline."""

from __future__ import annotations

from types import SimpleNamespace

from scarce.bench import BenchPreset
from scarce.bench.results import edge_shift
from scarce.bench.stages import grow_reference
from scarce.runs.store import RunRow


def _row(multiple: int, epochs: float, loss: float) -> RunRow:
    config = {"tags": {"multiple": multiple}, "model": {"depth": 4}, "train": {"epochs": epochs}}
    return RunRow(f"m{multiple}e{epochs}", "done", "", config, {}, val_loss=loss, select_loss=loss)


class FakeRuns:
    """Trains nothing: the loss at m x the budget and e epochs keeps falling until `best[m]` epochs."""

    def __init__(self, best: dict):
        self.best, self.sweeps = best, []

    def loss(self, m, e):
        return 4.0 - 0.1 * m ** 0.5 + 0.05 * abs(e - self.best[m]) / self.best[m]

    def run(self, sweep, points):
        self.sweeps.append((sweep, [(q["tags.multiple"], q["train.epochs"]) for q in points]))
        return [_row(q["tags.multiple"], q["train.epochs"], self.loss(q["tags.multiple"], q["train.epochs"]))
                for q in points]


def _grown(growth: int, best: dict):
    p = BenchPreset("t", budget_tokens=1000, multiples=(1, 2, 4), sizes=(4,), standard_epochs=(2, 4, 8),
                    reference_growth=growth)
    runs = FakeRuns(best)
    stores = {m: SimpleNamespace(path=SimpleNamespace(resolve=lambda: "store")) for m in p.multiples}
    standard = [_row(m, e, runs.loss(m, e)) for m in p.multiples for e in p.standard_epochs]
    return grow_reference(p, runs, stores, standard), runs


def test_the_grid_doubles_where_the_best_sat_at_its_edge_until_it_is_interior():
    rows, runs = _grown(3, {1: 4, 2: 16, 4: 64})
    # 2x is interior once 32 epochs are tried beside its best 16; 4x still wants more at the third round
    assert runs.sweeps == [("standard-growth", [(2, 16), (4, 16)]), ("standard-growth", [(2, 32), (4, 32)]),
                           ("standard-growth", [(4, 64)])]
    assert len(rows) == 9 + 5


def test_no_growth_by_default():
    rows, runs = _grown(0, {1: 4, 2: 16, 4: 64})
    assert runs.sweeps == [] and len(rows) == 9


def test_edge_shift_says_how_far_the_edge_could_move_the_multiple():
    reference = []
    for m, losses in ((1, {2: 4.2, 4: 4.0, 8: 4.1}), (2, {2: 4.0, 4: 3.9, 8: 3.85}), (4, {2: 3.9, 4: 3.8, 8: 3.7})):
        runs = [_row(m, e, v) for e, v in losses.items()]
        best = min(runs, key=lambda r: r.select_loss)
        edge = "most" if best.config.train.epochs == 8 else ""
        reference.append({"multiple": m, "train_tokens": 1000 * m, "row": best, "edge": edge, "runs": runs})
    moved = edge_shift(reference, 3.9)
    assert moved["gains"] == "2x 0.050 nats, 4x 0.100 nats"
    assert moved["empirical"] < 2.0  # lower reference points: 3.9 is reached with less data than 2x
    assert edge_shift([{**r, "edge": ""} for r in reference], 3.9) is None
