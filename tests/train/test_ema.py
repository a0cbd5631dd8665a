"""Weight averages: the EMA recurrence, the last-k average, their schedules, and the blends."""

import pytest
import torch
from torch import nn

from scarce.config import OptimConfig
from scarce.train.ema import EMA, LastK, build_averager


def _model(value: float) -> nn.Module:
    m = nn.Linear(3, 2, bias=False)
    nn.init.constant_(m.weight, value)
    return m


def test_ema_with_decay_zero_equals_the_live_weights():
    m = _model(1.0)
    ema = EMA(OptimConfig(ema_decay=0.0), 10)
    for v in (1.0, 2.0, -3.0):
        nn.init.constant_(m.weight, v)
        ema.update(m)
        assert torch.equal(ema.shadow["weight"], m.weight.detach())


def test_ema_recurrence_and_first_copy():
    m = _model(0.0)
    ema = EMA(OptimConfig(ema_decay=0.9), 10)
    expected = None
    for v in (4.0, 2.0, 1.0):
        nn.init.constant_(m.weight, v)
        ema.update(m)
        expected = v if expected is None else 0.9 * expected + 0.1 * v
    torch.testing.assert_close(ema.shadow["weight"], torch.full((2, 3), expected))
    assert ema.shadow["weight"].dtype == torch.float32


def test_ema_schedule_is_a_function_of_the_step():
    ema = EMA(OptimConfig(ema_decay=0.9, ema_start=0.5, ema_every=3), 20)
    assert [s for s in range(20) if ema.due(s)] == [10, 13, 16, 19]


def test_blends_between_last_and_ema():
    m = _model(0.0)
    ema = EMA(OptimConfig(ema_decay=0.5), 10)
    ema.update(m)  # ema = 0
    nn.init.constant_(m.weight, 4.0)
    last = m.state_dict()
    assert torch.equal(ema.blend(last, 0.0)["weight"], last["weight"])
    assert torch.equal(ema.blend(last, 1.0)["weight"], torch.zeros(2, 3))
    torch.testing.assert_close(ema.blend(last, 0.25)["weight"], torch.full((2, 3), 3.0))
    restored = EMA(OptimConfig(ema_decay=0.5), 10)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.shadow["weight"], ema.shadow["weight"])


def test_last_k_average_keeps_the_mean_of_the_last_k_snapshots():
    m, avg = _model(0.0), LastK(3, 1, 100)
    for v in (1.0, 2.0, 3.0, 4.0, 5.0):
        nn.init.constant_(m.weight, v)
        avg.update(m)
    assert len(avg.ring) == 3
    torch.testing.assert_close(avg.shadow["weight"], torch.full((2, 3), 4.0))  # mean of 3, 4, 5
    assert avg.shadow["weight"].dtype == torch.float32
    restored = LastK(3, 1, 100)
    restored.load_state_dict(avg.state_dict())
    assert [s["weight"][0, 0].item() for s in restored.ring] == [3.0, 4.0, 5.0]  # order kept
    torch.testing.assert_close(avg.blend(m.state_dict(), 0.5)["weight"], torch.full((2, 3), 4.5))


def test_last_k_of_one_snapshot_equals_the_live_weights():
    m, avg = _model(0.0), LastK(1, 1, 10)
    for v in (1.0, 7.0):
        nn.init.constant_(m.weight, v)
        avg.update(m)
        assert torch.equal(avg.shadow["weight"], m.weight.detach())


def test_last_k_snapshots_at_its_cadence_and_the_last_step():
    avg = LastK(4, 5, 23)
    assert [s for s in range(23) if avg.due(s)] == [4, 9, 14, 19, 22]


def test_averager_choice_and_its_validation():
    assert build_averager(OptimConfig(), 10, 5) is None
    assert isinstance(build_averager(OptimConfig(ema_decay=0.9), 10, 5), EMA)
    lastk = build_averager(OptimConfig(avg_last=3), 10, 5)
    assert isinstance(lastk, LastK) and lastk.every == 5 and lastk.k == 3
    assert build_averager(OptimConfig(avg_last=3, avg_every=2), 10, 5).every == 2
    with pytest.raises(ValueError, match="optim.avg_last"):
        OptimConfig(avg_last=3, ema_decay=0.9)
