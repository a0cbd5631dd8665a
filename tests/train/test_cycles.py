"""Cyclic schedules, anti-correlated weight decay, perturbation at cycle boundaries and the chain inside a run:
the pieces of hyper-epoch populations."""

import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from scarce.config import ObjectiveConfig, OptimConfig, RunConfig
from scarce.errors import UserError
from scarce.model.gpt import forward_flops_per_token
from scarce.rundir import snapshots
from scarce.runs.launch import resume, train
from scarce.train.distill import Distillation
from scarce.train.perturb import perturb_scale, perturb_weights
from scarce.train.schedule import cycle_length, cycle_of, lr_multiplier, wd_multiplier
from scarce.train.trainer import Trainer

CYCLIC = dict(schedule="cyclic", cycle_steps=10, final_lr_frac=0.08, warmup_frac=0.0)


def test_cyclic_lr_falls_to_its_floor_at_every_cycle_end_and_restarts():
    cfg = OptimConfig(**CYCLIC)
    lrs = [lr_multiplier(s, 40, cfg, 10) for s in range(40)]
    for c in range(4):
        cycle = lrs[10 * c:10 * c + 10]
        assert cycle == lrs[:10]  # every cycle the same
        assert all(a > b for a, b in zip(cycle, cycle[1:]))  # falling inside a cycle
    assert math.isclose(lrs[9], 0.08) and lrs[10] > 0.97  # the floor on the last step, then a restart
    assert math.isclose(lrs[4], 0.08 + 0.92 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # cosine halfway
    linear = OptimConfig(**{**CYCLIC, "cycle_shape": "linear"})
    assert [round(lr_multiplier(s, 40, linear, 10), 6) for s in (0, 4, 9)] == [round(1 - 0.092, 6), 0.54, 0.08]
    warm = OptimConfig(**{**CYCLIC, "warmup_frac": 0.1})  # warmup caps the first cycle's start only
    assert lr_multiplier(0, 40, warm, 10) == 0.25 and lr_multiplier(10, 40, warm, 10) == lrs[10]


def test_cycle_length_in_epochs_or_steps():
    assert cycle_length(OptimConfig(schedule="cyclic", cycle_epochs=2.0), 7) == 14
    assert cycle_length(OptimConfig(schedule="cyclic", cycle_steps=5), 7) == 5
    assert cycle_length(OptimConfig(), 7) == 0
    assert [cycle_of(s, 10) for s in (0, 9, 10, 39)] == [0, 0, 1, 3]


def test_anti_weight_decay_moves_against_the_learning_rate():
    cfg = OptimConfig(**CYCLIC, wd_schedule="anti", wd_floor=0.7)
    pairs = [(lr_multiplier(s, 20, cfg, 10), wd_multiplier(s, 20, cfg, lr_multiplier(s, 20, cfg, 10))) for s in range(20)]
    assert math.isclose(pairs[9][1], 1.0)  # the rate at its floor: full decay
    assert math.isclose(wd_multiplier(0, 20, cfg, 1.0), 0.7)  # the peak rate: the decay's floor
    lrs, wds = zip(*pairs)
    assert all((a > b) == (c < d) for a, b, c, d in zip(lrs, lrs[1:], wds, wds[1:]) if a != b)


@pytest.mark.parametrize("fields, message", [
    ({"schedule": "cyclic"}, "exactly one cycle length"),
    ({"schedule": "cyclic", "cycle_steps": 5, "cycle_epochs": 1.0}, "exactly one cycle length"),
    ({"schedule": "cosine", "cycle_steps": 5}, "only schedule cyclic has cycles"),
    ({"schedule": "cyclic", "cycle_steps": 5, "final_lr_frac": 0.0}, "must be in (0, 1]"),
    ({"wd_schedule": "anti", "wd_floor": 0.0}, "optim.wd_floor"),
    ({"wd_schedule": "anti", "wd_floor": 1.5}, "optim.wd_floor"),
    ({"perturb": 0.1}, "only schedule cyclic"),
    ({"schedule": "cyclic", "cycle_steps": 5, "cycle_shape": "square"}, "optim.cycle_shape"),
])
def test_bad_cycle_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        OptimConfig(**fields)


def test_perturbation_scale_decays_linearly_and_is_seeded():
    cfg = OptimConfig(**CYCLIC, perturb=0.25, perturb_final=0.05)
    assert [round(perturb_scale(c, 5, cfg), 4) for c in (1, 2, 3, 4)] == [0.25, 0.1833, 0.1167, 0.05]
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8))
    opt = torch.optim.AdamW([{"name": "matrices", "params": [model[0].weight]},
                             {"name": "scalars", "params": [model[0].bias, *model[1].parameters()]}])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    perturb_weights(opt, 0.25, seed=3, cycle=1)
    delta = model[0].weight - before["0.weight"]
    assert 0.1 < (delta.std() / before["0.weight"].std()).item() < 0.4
    assert torch.equal(model[0].bias, before["0.bias"]) and torch.equal(model[1].weight, before["1.weight"])
    again = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8))
    again.load_state_dict(before)
    opt2 = torch.optim.AdamW([{"name": "matrices", "params": [again[0].weight]}])
    perturb_weights(opt2, 0.25, seed=3, cycle=1)
    assert torch.equal(again[0].weight, model[0].weight)  # a pure function of (seed, cycle)


def population_config(tiny_config, store, **extra):
    overrides = {"train.tokens": 12 * 8 * 64, "train.eval_every": 5, "train.eval_tokens": 2048,
                 "optim.schedule": "cyclic", "optim.cycle_steps": 4, "optim.final_lr_frac": 0.08,
                 "optim.wd_schedule": "anti", "optim.wd_floor": 0.7, "optim.perturb": 0.25,
                 "optim.perturb_final": 0.05, "objective.kind": "chain", "objective.alpha": 0.45,
                 "objective.temperature": 1.2, "objective.chain_from": 1, "model.dropout": 0.1}
    return tiny_config(store, **{**overrides, **extra})


def test_a_population_run_keeps_its_cycle_ends_and_resumes_bit_identical(stdlib_store, tmp_path, tiny_config):
    cfg = population_config(tiny_config, stdlib_store)
    full = train(cfg, tmp_path / "full", results=tmp_path / "r", quiet=True)
    assert [p.stem for p in snapshots(tmp_path / "full")] == [f"step_{s:08d}" for s in (4, 8, 12)]
    cut = tmp_path / "cut"
    assert train(cfg, cut, results=tmp_path / "r", quiet=True, stop_at_step=7) is None  # killed mid-cycle 1
    assert json.loads((cut / "checkpoints" / "latest.json").read_text())["step"] == 5
    resumed = resume(cut, results=tmp_path / "r", quiet=True)
    assert resumed["val_loss"] == full["val_loss"]
    for a, b in zip(snapshots(tmp_path / "full"), snapshots(cut), strict=True):
        wa, wb = load_file(str(a)), load_file(str(b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_the_chain_and_the_perturbation_change_the_run(stdlib_store, tmp_path, tiny_config):
    base = train(population_config(tiny_config, stdlib_store), tmp_path / "a", results=tmp_path / "r", quiet=True)
    plain = population_config(tiny_config, stdlib_store, **{"objective.kind": "ce", "optim.perturb": 0.0,
                                                           "optim.perturb_final": 0.0})
    other = train(plain, tmp_path / "b", results=tmp_path / "r", quiet=True)
    assert base["val_loss"] != other["val_loss"]


def test_the_chain_is_a_distillation_from_the_previous_snapshot(stdlib_store, tmp_path, tiny_config):
    """At every step of cycle c >= chain_from, the chain's loss is the distillation objective's with the snapshot
    that ended cycle c - 1 as the one teacher, launched apart."""
    cfg = population_config(tiny_config, stdlib_store, **{"optim.perturb": 0.0, "optim.perturb_final": 0.0})
    train(cfg, tmp_path / "pop", results=tmp_path / "r", quiet=True)
    trainer = Trainer(RunConfig.from_dict(cfg.to_dict()), tmp_path / "pop", quiet=True)
    trainer.start_cycle(5)  # cycle 1: the teacher is the snapshot of step 4
    teacher_run = tmp_path / "teacher"
    (teacher_run / "checkpoints").mkdir(parents=True)
    (teacher_run / "config.json").write_text((tmp_path / "pop" / "config.json").read_text())
    (teacher_run / "checkpoints" / "best.safetensors").write_bytes(snapshots(tmp_path / "pop")[0].read_bytes())
    apart = Distillation(ObjectiveConfig("distill", [str(teacher_run)], 0.45, 1.2), trainer.cfg.model.vocab_size, "cpu")
    x, y = trainer.loader.batch(5, 0)
    torch.manual_seed(0)
    chained = trainer.objective(trainer.forward, x, y)
    torch.manual_seed(0)
    assert torch.equal(chained, apart(trainer.forward, x, y))
    trainer.start_cycle(0)  # cycle 0 has no teacher: the data alone
    torch.manual_seed(0)
    alone = trainer.objective(trainer.forward, x, y)
    torch.manual_seed(0)
    assert torch.equal(alone, trainer.forward(x, y))


def test_cycles_the_run_cannot_hold_are_one_line_errors(stdlib_store, tmp_path, tiny_config):
    long = population_config(tiny_config, stdlib_store, **{"optim.cycle_steps": 100})
    with pytest.raises(UserError, match="longer than the run"):
        train(long, tmp_path / "long", results=tmp_path / "r", quiet=True)
    assert not (tmp_path / "long" / "checkpoints").exists()
    chain = dataclasses.replace(tiny_config(stdlib_store), objective=ObjectiveConfig(kind="chain"))
    with pytest.raises(UserError, match="needs optim.schedule=cyclic"):
        train(chain, tmp_path / "chain", results=tmp_path / "r", quiet=True)


@pytest.mark.parametrize("chain_from, taught", [(1, 8), (2, 4)])
def test_the_chains_teacher_forwards_are_counted_in_the_runs_flops(stdlib_store, tmp_path, tiny_config, chain_from,
                                                                   taught):
    """12 steps in cycles of 4: the teacher (the snapshot before) runs one forward per token from cycle
    chain_from on, a third of a training step's FLOPs of the same model; the run's flops hold both."""
    cfg = population_config(tiny_config, stdlib_store, **{"objective.chain_from": chain_from})
    full = train(cfg, tmp_path / "pop", results=tmp_path / "r", quiet=True)
    trainer = Trainer(RunConfig.from_dict(cfg.to_dict()), tmp_path / "pop", quiet=True)
    per_step = trainer.tokens_per_step
    forward = forward_flops_per_token(trainer.model)
    assert forward == pytest.approx(trainer.flops_per_token / 3)
    assert full["teacher_flops"] == pytest.approx(taught * per_step * forward)
    assert full["flops"] == pytest.approx(12 * per_step * trainer.flops_per_token + full["teacher_flops"])
    plain = train(population_config(tiny_config, stdlib_store, **{"objective.kind": "ce"}), tmp_path / "ce",
                  results=tmp_path / "r", quiet=True)
    assert "teacher_flops" not in plain and plain["flops"] == pytest.approx(12 * per_step * trainer.flops_per_token)


def test_a_distilled_runs_flops_count_every_teachers_forward(stdlib_store, tmp_path, tiny_config):
    """An ensemble teacher of two runs of another depth: one forward of each per token, at the student's context."""
    teachers = []
    for seed in (0, 1):
        t = tiny_config(stdlib_store, **{"train.tokens": 2 * 8 * 64, "train.seed": seed, "model.depth": 3})
        train(t, tmp_path / f"t{seed}", results=tmp_path / "r", quiet=True)
        teachers.append(str(tmp_path / f"t{seed}"))
    cfg = tiny_config(stdlib_store, **{"train.tokens": 3 * 8 * 64, "objective.kind": "distill",
                                       "objective.teachers": teachers})
    out = train(cfg, tmp_path / "student", results=tmp_path / "r", quiet=True)
    trainer = Trainer(RunConfig.from_dict(cfg.to_dict()), tmp_path / "student", quiet=True)
    forward = sum(forward_flops_per_token(t, trainer.cfg.model.seq_len) for t in trainer.objective.teachers)
    assert forward > 0 and out["teacher_flops"] == pytest.approx(out["tokens_seen"] * forward)
    assert out["flops"] == pytest.approx(out["tokens_seen"] * trainer.flops_per_token + out["teacher_flops"])


def test_a_population_trajectory_trains_on_the_bench_s_slowrun_stack(stdlib_store, tmp_path, tiny_config):
    """cpu-full-population's trajectories run at the chosen setting, which may be the slowrun stack (Muon, the
    multi-token head, windows, softcap, dropout): the cycles, the chain and the perturbation train there too."""
    from scarce.config import slowrun_overrides

    cyclic = ("optim.schedule", "optim.final_lr_frac", "optim.wd_schedule")  # the population's, over the stack's
    stack = {k: v for k, v in slowrun_overrides(looping=False).items() if k not in cyclic}
    cfg = population_config(tiny_config, stdlib_store, **stack)
    assert cfg.optim.optimizer == "muon" and cfg.objective.kind == "chain" and cfg.optim.schedule == "cyclic"
    out = train(cfg, tmp_path / "stack", results=tmp_path / "r", quiet=True)
    assert math.isfinite(out["val_loss"]) and len(snapshots(tmp_path / "stack")) == 3
    assert out["teacher_flops"] > 0
