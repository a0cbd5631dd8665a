import pytest

from scarce.config import OptimConfig
from scarce.train.schedule import lr_multiplier


def test_cosine_warms_up_then_decays_to_the_floor():
    cfg = OptimConfig(schedule="cosine", warmup_frac=0.1, final_lr_frac=0.1)
    lrs = [lr_multiplier(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_wsd_is_flat_then_linear():
    cfg = OptimConfig(schedule="wsd", warmup_frac=0.0, warmdown_frac=0.2, final_lr_frac=0.0)
    assert lr_multiplier(79, 100, cfg) == 1.0
    assert lr_multiplier(89, 100, cfg) == pytest.approx(0.5)
    assert lr_multiplier(99, 100, cfg) == pytest.approx(0.0)
