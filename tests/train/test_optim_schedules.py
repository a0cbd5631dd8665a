"""Weight-decay schedules and per-group rates."""

import math

from scarce.config import OptimConfig
from scarce.train.schedule import wd_multiplier


def test_weight_decay_schedules():
    assert wd_multiplier(5, 10, OptimConfig(), 0.3) == 1.0
    assert wd_multiplier(5, 10, OptimConfig(wd_schedule="lr"), 0.3) == 0.3
    cos = OptimConfig(wd_schedule="cosine")
    assert wd_multiplier(0, 10, cos, 1.0) == 1.0
    assert math.isclose(wd_multiplier(5, 10, cos, 1.0), 0.5)
    assert math.isclose(wd_multiplier(10, 10, cos, 1.0), 0.0, abs_tol=1e-12)
