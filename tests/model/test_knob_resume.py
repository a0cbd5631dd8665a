"""Every knob and the slowrun preset survive a kill and a resume bit for bit, on the token store."""

import json

import pytest
import torch
from safetensors.torch import load_file

from scarce.config import with_slowrun_stack
from scarce.runs.launch import resume, train

BASE = {"train.tokens": 12 * 8 * 64, "train.eval_every": 5, "train.eval_tokens": 2048, "model.depth": 3}
EVERYTHING = {
    "model.mlp": "swiglu", "model.value_embed": "alt", "model.unet_skips": True, "model.resid_lambdas": True,
    "model.attn_gate": True, "model.xsa": True, "model.rotary_frac": 0.5, "model.key_offset": "0",
    "model.qk_norm": True, "model.softcap": 15.0, "model.window_pattern": "SL", "model.short_window": 16,
    "model.dropout": 0.1, "model.loop_layers": "0:2", "model.loop_extra": 1, "model.loop_from": 0.25,
    "model.mtp_weight": 0.3, "optim.optimizer": "muon", "optim.cautious_wd": True, "optim.weight_decay": 1.0,
    "optim.wd_schedule": "cosine", "optim.ema_decay": 0.9, "optim.ema_start": 0.1, "optim.ema_every": 2,
}


def _weights(run_dir):
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    return load_file(str(run_dir / "checkpoints" / latest["dir"] / "model.safetensors"))


def _slowrun(store, tiny_config):
    return with_slowrun_stack(tiny_config(store, **BASE))  # its last-3 average holds the step-5 snapshot at the cut


def _everything(store, tiny_config):
    return tiny_config(store, **BASE, **EVERYTHING)


def _last_k(store, tiny_config):
    return tiny_config(store, **BASE, **{"optim.avg_last": 3, "optim.avg_every": 2, "model.dropout": 0.1})


@pytest.mark.parametrize("make", [_slowrun, _everything, _last_k], ids=["slowrun", "every-knob", "last-k"])
def test_resume_is_bit_identical(stdlib_store, tmp_path, tiny_config, make):
    full = train(make(stdlib_store, tiny_config), tmp_path / "full", results=tmp_path / "r", quiet=True)
    cut = tmp_path / "cut"
    assert train(make(stdlib_store, tiny_config), cut, results=tmp_path / "r", quiet=True, stop_at_step=8) is None
    resumed = resume(cut, results=tmp_path / "r", quiet=True)
    a, b = _weights(tmp_path / "full"), _weights(cut)
    assert any(k.startswith(("ema.", "lastk.")) for k in a)  # the weight average travels in the checkpoint
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["val_loss"] == full["val_loss"] and resumed["flops"] == full["flops"]
    last = json.loads((cut / "metrics.jsonl").read_text().splitlines()[-1])
    if make is _last_k:
        assert last["step"] == 12 and "avg_blend" in last
        return
    assert full["flops"] > full["steps"] * 8 * 64 * full["flops_per_token"]  # the replays are counted
    assert last["step"] == 12 and ("avg_blend" if make is _slowrun else "ema_blend") in last


def test_looping_changes_nothing_before_its_switch_on(stdlib_store, tmp_path, tiny_config):
    every4 = {**BASE, "train.eval_every": 4}
    plain = tiny_config(stdlib_store, **every4)
    looped = tiny_config(stdlib_store, **every4, **{"model.loop_layers": "0:2", "model.loop_from": 0.5})
    train(plain, tmp_path / "plain", results=tmp_path / "r", quiet=True, stop_at_step=4)
    train(looped, tmp_path / "looped", results=tmp_path / "r", quiet=True, stop_at_step=4)  # switch at step 6
    a, b = _weights(tmp_path / "plain"), _weights(tmp_path / "looped")
    assert all(torch.equal(a[k], b[k]) for k in a)
