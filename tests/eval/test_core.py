"""CORE: centered accuracy against hand-computed values, the mean over the tasks present, partial labels."""

from __future__ import annotations

import pytest

from scarce.eval import core


def test_centered_accuracy():
    assert core.centered(0.625, 0.25) == pytest.approx(0.5)
    assert core.centered(0.25, 0.25) == 0 and core.centered(1.0, 0.62) == pytest.approx(1.0)
    assert core.centered(0.0, 0.5) == pytest.approx(-1.0)  # worse than chance is negative
    with pytest.raises(ValueError):
        core.centered(0.5, 1.0)


def test_partial_core_is_the_mean_over_the_tasks_present():
    results = {
        "arc_easy": {"acc": 0.50, "acc_norm": 0.625, "acc_stderr": 0.01},  # acc_norm: (0.625-0.25)/0.75 = 0.5
        "piqa": {"acc": 0.80},  # (0.8-0.5)/0.5 = 0.6
        "boolq": {"acc": 0.62},  # 0
        "wsc273": {"acc": 0.6},  # DCLM's winograd: (0.6-0.5)/0.5 = 0.2
        "scarce_nextline": {"acc": 0.55},  # outside CORE: centered, not averaged
        "my_task": {"acc": 0.9},  # no known baseline
    }
    summary = core.core(results)
    assert summary["score"] == pytest.approx((0.5 + 0.6 + 0.0 + 0.2) / 4)
    assert summary["partial"] is True
    assert summary["covers"] == ["arc_easy", "piqa", "winograd", "boolq"]
    assert len(summary["missing"]) == 18 and "scarce_nextline" not in summary["tasks"]
    assert summary["tasks"]["arc_easy"] == {"task": "arc_easy", "metric": "acc_norm", "accuracy": 0.625,
                                            "random": 0.25, "centered": pytest.approx(0.5)}
    line = core.describe(summary)
    assert line.startswith("CORE 0.3250 (partial: 4 of 22 tasks: arc_easy, piqa, winograd, boolq")
    centered = core.centered_accuracies(results)
    assert centered["scarce_nextline"]["centered"] == pytest.approx((0.55 - 0.25) / 0.75)
    assert "my_task" not in centered


def test_full_core_over_all_22_tasks():
    results = {name: {"acc": core.RANDOM_BASELINES[name] + 0.1 * (1 - core.RANDOM_BASELINES[name])}
               for name in core.CORE_TASKS}
    summary = core.core(results)
    assert len(core.CORE_TASKS) == 22
    assert summary["score"] == pytest.approx(0.1) and summary["partial"] is False and summary["missing"] == []
    assert core.describe(summary) == "CORE 0.1000 (all 22 tasks)"


def test_no_core_task():
    summary = core.core({"scarce_nextline": {"acc": 0.4}})
    assert summary["score"] is None and summary["partial"] and summary["covers"] == []
    assert core.describe(summary) == "CORE: no core task evaluated"
