"""NanoGPT Slowrun's record lines on the training side: SWA cycles over the last epochs (line 13), the record's
weight-decay schedule and square-root warmdown (line 20), and random token replacement (arXiv 2606.16246); with
the model's stochastic depth and init and the loader's document shuffling (line 19), a kill and a resume end
bit-identical."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from scarce.config import ObjectiveConfig, OptimConfig, RunConfig, TrainConfig, with_slowrun_tiny_stack
from scarce.errors import UserError
from scarce.model.looping import loops_at
from scarce.rundir import snapshots
from scarce.runs.launch import resume, train
from scarce.train.augment import offset_targets, replace_tokens
from scarce.train.schedule import lr_multiplier, schedule_multiplier, wd_multiplier
from scarce.train.trainer import Trainer

# 11 epochs of 10 steps, the last 3 of them SWA epochs (steps 80-109); warmdown over the last 22 steps (88-109)
RECORD = dict(schedule="wsd", warmup_frac=0.0, warmdown_frac=0.2, final_lr_frac=0.0, swa_epochs=3)


def test_swa_cycles_fall_from_the_schedules_rate_to_the_floor_each_epoch():
    cfg = OptimConfig(**RECORD)
    lrs = [lr_multiplier(s, 110, cfg, 0, 10) for s in range(110)]
    assert lrs[:80] == [schedule_multiplier(s, 110, cfg) for s in range(80)] == [1.0] * 80  # before SWA: the wsd
    assert lrs[80] == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi / 10)))  # just below the peak
    assert [lrs[s] for s in (89, 99, 109)] == pytest.approx([0.05] * 3)  # every SWA epoch ends on the floor
    assert all(a > b for a, b in zip(lrs[80:90], lrs[81:90]))  # falling inside a cycle
    base = schedule_multiplier(90, 110, cfg)  # the warmdown has begun: the second cycle starts from its rate
    assert base == pytest.approx(1 - 3 / 22) and lrs[90] == pytest.approx(0.05 + (base - 0.05) * (lrs[80] - 0.05) / 0.95)
    assert schedule_multiplier(108, 110, cfg) < 0.05 and lrs[108] == 0.05  # the warmdown below the floor: the floor
    assert lr_multiplier(85, 110, OptimConfig(**{**RECORD, "swa_epochs": 0}), 0, 10) == 1.0  # off: the plain wsd


def test_record_weight_decay_holds_lowers_then_rises_against_each_swa_cycle():
    cfg = OptimConfig(**RECORD, wd_schedule="record")
    wd = [wd_multiplier(s, 110, cfg, 1.0, 10) for s in range(110)]
    assert wd[:45] == [1.0] * 45  # held for the first 40% (44 steps)
    assert wd[62] == pytest.approx(1 - 0.35 * 0.5)  # halfway from step 44 to the SWA start at 80
    assert [wd[s] for s in (80, 90, 100)] == pytest.approx([0.65] * 3)  # each SWA epoch starts low...
    assert wd[85] == pytest.approx(0.65 + 0.85 * 0.5) and wd[109] == pytest.approx(0.65 + 0.85 * 0.9)  # ...and rises
    lrs = [lr_multiplier(s, 110, cfg, 0, 10) for s in range(80, 90)]
    assert all(a > b for a, b in zip(lrs, lrs[1:])) and all(a < b for a, b in zip(wd[80:90], wd[81:90]))
    no_swa = OptimConfig(**{**RECORD, "swa_epochs": 0}, wd_schedule="record")  # lowered to 0.65 at the end instead
    assert wd_multiplier(110, 110, no_swa, 1.0, 10) == pytest.approx(0.65)
    assert wd_multiplier(77, 110, no_swa, 1.0, 10) == pytest.approx(1 - 0.35 * 0.5)


def test_square_root_warmdown():
    cfg = OptimConfig(schedule="wsd", warmup_frac=0.0, warmdown_frac=0.5, final_lr_frac=0.1, warmdown_power=0.5)
    assert lr_multiplier(49, 100, cfg) == 1.0
    assert lr_multiplier(74, 100, cfg) == pytest.approx(0.1 + 0.9 * math.sqrt(0.5))  # above the line's 0.55
    assert lr_multiplier(99, 100, cfg) == pytest.approx(0.1)


@pytest.mark.parametrize("fields, message", [
    ({"swa_epochs": -1}, "optim.swa_epochs"),
    ({"swa_epochs": 2, "schedule": "cyclic", "cycle_steps": 4}, "optim.swa_epochs"),
    ({"swa_floor": 0.0}, "optim.swa_floor"),
    ({"warmdown_power": 0.0}, "optim.warmdown_power"),
    ({"wd_schedule": "sawtooth"}, "optim.wd_schedule"),
])
def test_bad_schedule_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        OptimConfig(**fields)


def test_token_replacement_replaces_a_share_of_the_inputs_and_is_seeded():
    x = torch.randint(0, 512, (64, 256), generator=torch.Generator().manual_seed(0))
    before = x.clone()
    y = replace_tokens(x, 0.1, 512, (0, 3, 1, 0))
    assert torch.equal(x, before)  # a copy
    assert (y != x).float().mean().item() == pytest.approx(0.1 * (1 - 1 / 512), abs=0.01)
    assert int(y.max()) < 512 and int(y.min()) >= 0
    assert torch.equal(y, replace_tokens(x, 0.1, 512, (0, 3, 1, 0)))
    assert not torch.equal(y, replace_tokens(x, 0.1, 512, (0, 3, 2, 0)))  # another micro-batch, other tokens
    with pytest.raises(ValueError, match=r"train.augment_replace: must be in \[0, 1\)"):
        TrainConfig(augment_replace=1.0)


def test_the_trainer_replaces_inputs_and_leaves_the_targets(tiny_store, tmp_path, tiny_config):
    cfg = tiny_config(tiny_store, **{"train.epochs": 1.0, "train.augment_replace": 0.25, "train.grad_accum": 2})
    trainer = Trainer(RunConfig.from_dict(cfg.to_dict()), tmp_path / "run", quiet=True)
    seen = []
    trainer.compute_loss = lambda x, y, real: seen.append((x, y)) or trainer.objective(trainer.forward, x, y, real)
    trainer.train_step(3)
    for micro, (x, y) in enumerate(seen):
        clean_x, clean_y = trainer.loader.batch(3, micro)
        assert torch.equal(y, clean_y)  # the targets are the true next tokens
        assert 0.1 < (x != clean_x).float().mean().item() < 0.4
    assert not torch.equal(seen[0][0] != trainer.loader.batch(3, 0)[0], seen[1][0] != trainer.loader.batch(3, 1)[0])


STACK = {"train.epochs": 3.0, "train.eval_every": 10, "model.drop_path": 0.3, "model.init": "record",
         "train.augment_replace": 0.1, "train.doc_shuffle": True, "optim.schedule": "wsd", "optim.warmup_frac": 0.0,
         "optim.final_lr_frac": 0.0, "optim.swa_epochs": 2, "optim.wd_schedule": "record", "optim.warmdown_power": 0.5, "optim.weight_decay": 1.0}


def _weights(run_dir):
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    return load_file(str(run_dir / "checkpoints" / latest["dir"] / "model.safetensors"))


def test_the_record_lines_resume_bit_identical_and_keep_the_swa_epoch_ends(tiny_store, tmp_path, tiny_config):
    cfg = tiny_config(tiny_store, **STACK)
    full = train(cfg, tmp_path / "full", results=tmp_path / "r", quiet=True)
    per_epoch = full["steps"] // 3
    assert [p.stem for p in snapshots(tmp_path / "full")] == [f"step_{s:08d}" for s in (2 * per_epoch, 3 * per_epoch)]
    cut = tmp_path / "cut"
    assert train(cfg, cut, results=tmp_path / "r", quiet=True, stop_at_step=per_epoch + 3) is None  # mid SWA epoch 1
    resumed = resume(cut, results=tmp_path / "r", quiet=True)
    a, b = _weights(tmp_path / "full"), _weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["val_loss"] == full["val_loss"]
    plain = train(tiny_config(tiny_store, **{**STACK, "model.drop_path": 0.0, "train.augment_replace": 0.0}),
                  tmp_path / "plain", results=tmp_path / "r", quiet=True)
    assert plain["val_loss"] != full["val_loss"]  # the knobs acted


def test_more_swa_epochs_than_the_run_has_are_refused(tiny_store, tmp_path, tiny_config):
    cfg = tiny_config(tiny_store, **{**STACK, "optim.swa_epochs": 4})
    with pytest.raises(UserError, match="optim.swa_epochs: 4 SWA epochs"):
        Trainer(RunConfig.from_dict(cfg.to_dict()), tmp_path / "run", quiet=True)


def test_target_offsets_shift_a_share_of_the_sequences_targets():
    y = torch.arange(3000 * 16).view(3000, 16)  # y[b, t] = 16 b + t: the offset is read off the value
    before = y.clone()
    out = offset_targets(y, 0.4, 3, (0, 5, 0, 0))
    assert torch.equal(y, before) and torch.equal(out, offset_targets(y, 0.4, 3, (0, 5, 0, 0)))
    assert not torch.equal(out, offset_targets(y, 0.4, 3, (0, 5, 1, 0)))  # another micro-batch, other draws
    shift = out[:, 0] - y[:, 0]  # (B,)
    assert set(shift.tolist()) == {0, 1, 2, 3}
    assert (shift > 0).float().mean().item() == pytest.approx(0.4, abs=0.03)
    assert [(shift == k).sum().item() / (shift > 0).sum().item() for k in (1, 2, 3)] == pytest.approx([1 / 3] * 3,
                                                                                                      abs=0.05)
    for row, k in zip(out, shift.tolist()):  # token t+1+k, the last k positions keep their next token
        start = int(row[0]) - k
        expect = [start + t + k if t + k < 16 else start + t for t in range(16)]
        assert row.tolist() == expect
    assert torch.equal(offset_targets(y, 0.0, 3, (0, 5, 0, 0)), y)


def test_the_trainer_offsets_targets_and_leaves_the_inputs(tiny_store, tmp_path, tiny_config):
    cfg = tiny_config(tiny_store, **{"train.epochs": 1.0, "train.augment_offset": 0.5, "train.augment_offset_max": 2})
    trainer = Trainer(RunConfig.from_dict(cfg.to_dict()), tmp_path / "run", quiet=True)
    seen = []
    trainer.compute_loss = lambda x, y, real: seen.append((x, y)) or trainer.objective(trainer.forward, x, y, real)
    trainer.train_step(2)
    (x, y), (clean_x, clean_y) = seen[0], trainer.loader.batch(2, 0)
    assert torch.equal(x, clean_x)  # inputs as the loader gives them
    offset = (y != clean_y).any(dim=1)
    assert 0 < int(offset.sum()) < len(y)
    assert torch.equal(y[~offset], clean_y[~offset])


@pytest.mark.parametrize("fields, message", [
    ({"train": TrainConfig(augment_offset=0.2), "objective": ObjectiveConfig(kind="distill", teachers=["t"])},
     "train.augment_offset: offsets the targets: not with objective.kind=distill"),
    ({"train": TrainConfig(augment_offset=0.2, augment_offset_max=256)}, "train.augment_offset_max: must be below"),
])
def test_target_offsets_that_cannot_hold_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**fields)
    for bad, name in (({"augment_offset": 1.0}, r"train.augment_offset: must be in \[0, 1\)"),
                      ({"augment_offset_max": 0}, "train.augment_offset_max: must be >= 1")):
        with pytest.raises(ValueError, match=name):
            TrainConfig(**bad)


NEW = {"train.epochs": 2.0, "train.eval_every": 10, "optim.optimizer": "muon", "optim.muon_orth": "polar-express",
       "optim.muon_row_norm": True, "optim.muon_momentum_warmup": 8, "model.iha": "all", "model.xsa": True,
       "model.xsa_learn": True, "model.loop_layers": "0:1", "model.loop_from": 0.3, "model.loop_backprop": "last",
       "train.augment_offset": 0.3, "train.augment_offset_max": 2, "train.augment_replace": 0.1}


def test_the_new_record_knobs_resume_bit_identical(tiny_store, tmp_path, tiny_config):
    cfg = tiny_config(tiny_store, **NEW)
    full = train(cfg, tmp_path / "full", results=tmp_path / "r", quiet=True)
    cut = tmp_path / "cut"
    assert train(cfg, cut, results=tmp_path / "r", quiet=True, stop_at_step=full["steps"] // 2 + 1) is None
    resumed = resume(cut, results=tmp_path / "r", quiet=True)
    a, b = _weights(tmp_path / "full"), _weights(cut)
    assert any(".attn.mix." in k for k in a) and any(".xsa_scale." in k for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["val_loss"] == full["val_loss"] and resumed["flops"] == full["flops"]
    plain = train(tiny_config(tiny_store, **{**NEW, "train.augment_offset": 0.0, "model.loop_backprop": "all"}),
                  tmp_path / "plain", results=tmp_path / "r", quiet=True)
    assert plain["val_loss"] != full["val_loss"] and plain["flops"] > full["flops"]  # the knobs acted


def test_the_slowrun_tiny_stack_trains_and_its_recurrence_switches_on_late(tiny_store, tmp_path, tiny_config):
    cfg = with_slowrun_tiny_stack(tiny_config(tiny_store, **{"model.depth": 3, "train.epochs": 2.0,
                                                             "train.eval_every": 10}))
    assert (cfg.model.loop_layers, cfg.model.key_offset, cfg.model.loop_backprop) == ("0:2", "2", "last")
    trainer = Trainer(RunConfig.from_dict(cfg.to_dict()), tmp_path / "run", quiet=True)
    switch = int(0.7 * trainer.steps)
    assert loops_at(cfg.model, switch - 1, trainer.steps) == 0 and loops_at(cfg.model, switch, trainer.steps) == 1
    out = train(cfg, tmp_path / "full", results=tmp_path / "r", quiet=True)
    assert math.isfinite(out["val_loss"]) and out["steps"] == trainer.steps
