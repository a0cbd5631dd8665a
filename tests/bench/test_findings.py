"""The bench's finding checks on synthetic runs: each published finding is found where the numbers show it
and not where they do not (no training here: runs are run-store rows made by hand, val windows are arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from scarce.bench import BenchPreset
from scarce.bench.common import quietly
from scarce.bench.findings import check_findings
from scarce.runs.store import RunRow
from scarce.scaling import fit_power_law

T, WINDOWS = 128, 300


class FakeEvaluations:
    """Per-window NLLs that average to each run's val loss, with paired noise (the same windows)."""

    def __init__(self, seed: int = 0):
        self.noise = np.random.default_rng(seed).normal(0, 20.0, size=WINDOWS)  # shared by every run: paired

    def windows(self, rows):
        return np.stack([r.val_loss * T + self.noise + 0.5 * np.sin(np.arange(WINDOWS) + i)
                         for i, r in enumerate(rows)])

    def prefixes(self, rows):
        return np.stack([np.mean([r.val_loss for r in rows[:k]]) * T - 0.01 * T * k + self.noise
                         for k in range(1, len(rows) + 1)])


def _run(depth, epochs, val, params):
    return RunRow(f"d{depth}e{epochs}", "done", "", {"model": {"seq_len": T, "depth": depth}, "train": {"epochs": epochs}},
                  {"non_embedding_params": params}, val_loss=val, select_loss=val)


def _std(curves: dict) -> list[dict]:
    return [{"depth": d, "epochs": e, "params": 1000 * d, "select_loss": v, "val_loss": v,
             "row": _run(d, e, v, 1000 * d)} for d, vals in curves.items() for e, v in zip((2, 4, 8, 16), vals)]


def _chosen(vals: dict) -> dict:
    return {d: {"row": _run(d, 8, v, 10**5 * d), "descent": {"certified": True, "best": {"optim.weight_decay": 1.6}}}
            for d, v in vals.items()}


def _preset(sizes=(2, 3, 4, 5)):
    return BenchPreset("synthetic", budget_tokens=1000, sizes=sizes, n_boot=200)


def _by_id(findings):
    return {f["id"]: f for f in findings}


def _fits(chosen):
    params = [c["row"].summary["non_embedding_params"] for c in chosen.values()]
    return {"regularized_params": quietly(fit_power_law, params, [c["row"].val_loss for c in chosen.values()],
                                           n_boot=200)}


U_SHAPED = {2: [5.2, 5.0, 4.95, 5.1], 3: [5.0, 4.8, 4.75, 4.9], 4: [4.9, 4.7, 4.72, 4.95], 5: [4.9, 4.72, 4.7, 5.0]}
STILL_IMPROVING = {d: [v - 0.05 * i for i, v in enumerate([5.0, 4.9, 4.8, 4.7])] for d in (2, 3, 4, 5)}
REGULARIZED = {2: 4.80, 3: 4.62, 4: 4.52, 5: 4.46}  # E + A N^-alpha, below the standard's best


def test_overfitting_found_only_where_val_turns_up():
    chosen = _chosen(REGULARIZED)
    found = _by_id(check_findings(_preset(), _std(U_SHAPED), chosen, _fits(chosen), {}, {}, None, FakeEvaluations(), []))
    assert found["1"]["reproduced"] is True and found["1"]["low"] > 0
    assert all(s["interior"] for s in found["1"]["per_size"])
    found = _by_id(check_findings(_preset(), _std(STILL_IMPROVING), chosen, _fits(chosen), {}, {}, None,
                             FakeEvaluations(), []))
    assert found["1"]["reproduced"] is False and not any(s["interior"] for s in found["1"]["per_size"])


def test_regularized_scaling_needs_monotone_losses_and_an_asymptote_below_the_standard():
    chosen = _chosen(REGULARIZED)
    found = _by_id(check_findings(_preset(), _std(U_SHAPED), chosen, _fits(chosen), {}, {}, None, FakeEvaluations(), []))
    assert found["2"]["reproduced"] is True and found["2"]["value"] < 4.46
    bumpy = _chosen({2: 4.8, 3: 4.5, 4: 4.6, 5: 4.45})
    found = _by_id(check_findings(_preset(), _std(U_SHAPED), bumpy, _fits(bumpy), {}, {}, None, FakeEvaluations(), []))
    assert found["2"]["reproduced"] is False and "not monotone" in found["2"]["detail"]
    worse = _chosen({d: v + 0.5 for d, v in REGULARIZED.items()})  # above the standard recipe's best 4.7
    found = _by_id(check_findings(_preset(), _std(U_SHAPED), worse, _fits(worse), {}, {}, None, FakeEvaluations(), []))
    assert found["2"]["reproduced"] is False


def test_unmeasured_findings_say_so():
    chosen = _chosen({2: 4.8, 3: 4.6})
    found = _by_id(check_findings(_preset((2, 3)), _std({2: U_SHAPED[2], 3: U_SHAPED[3]}), chosen, {}, {}, {}, None,
                             FakeEvaluations(), []))
    assert found["2"]["reproduced"] is None and found["3"]["reproduced"] is None  # 2 sizes, no ensemble
    assert all(found[k]["reproduced"] is None for k in ("4", "5a", "5b", "5c", "6"))


@pytest.mark.parametrize("student, reproduced", [(4.40, True), (4.49, False)])
def test_distillation_share_of_the_ensemble_gain(student, reproduced):
    from scarce.bench.findings import distillation_findings

    members = [_run(4, 8, 4.5, 10**5) for _ in range(4)]
    ens = {4: {"rows": members}}
    distillation = {"student": _run(4, 8, student, 10**5), "self": _run(4, 8, 4.45, 10**5),
                    "chain": [_run(4, 8, 4.4, 10**5) for _ in range(4)]}
    found = _by_id(distillation_findings(_preset((2, 4)), ens, distillation, FakeEvaluations(), {"n_boot": 200}))
    # the ensemble of 4 sits 0.04 below one member (FakeEvaluations.prefixes): a student at 4.40 keeps it all
    assert found["5a"]["reproduced"] is reproduced
    assert found["5b"]["reproduced"] is True and found["5b"]["value"] == pytest.approx(0.05, abs=1e-3)
