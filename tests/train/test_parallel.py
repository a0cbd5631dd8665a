"""The parallelism strategy a run gets from its config and runtime (the trainer calls it, never a flag)."""

import pytest

from scarce.config import get_preset
from scarce.errors import UserError
from scarce.train.parallel import DDP, FSDP, Single, strategy
from scarce.train.runtime import Runtime


def _cfg(parallel: str):
    cfg = get_preset("tiny")
    cfg.train.parallel = parallel
    return cfg


def test_one_process_trains_as_it_is_and_torchrun_gets_ddp():
    one, torchrun = Runtime("cpu", "fp32"), Runtime("cpu", "fp32", world=2, distributed=True)
    assert type(strategy(_cfg("ddp"), one)) is Single
    assert type(strategy(_cfg("ddp"), torchrun)) is DDP
    assert strategy(_cfg("ddp"), one).compile_setting("auto") == "auto"


def test_fsdp_is_checked_and_never_compiled():
    with pytest.raises(UserError, match="torchrun"):
        strategy(_cfg("fsdp"), Runtime("cpu", "fp32"))
    cfg = _cfg("fsdp")
    cfg.optim.ema_decay = cfg.optim.avg_last = 0
    s = strategy(cfg, Runtime("cuda", "bf16", world=2, distributed=True))
    assert isinstance(s, FSDP) and s.bf16 and s.compile_setting("auto") is False
