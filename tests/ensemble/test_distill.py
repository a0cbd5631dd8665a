"""Logit distillation: alpha=0 is plain training bit for bit; the KL term vanishes when student == teacher."""

from __future__ import annotations

import pytest
import torch

from scarce.train.checkpoint import load_weights
from scarce.train.distill import DistillConfig, DistillTrainer, kd_loss, with_teacher
from scarce.train.trainer import train


def _final_weights(run_dir):
    return load_weights(sorted((run_dir / "checkpoints").glob("step_*"))[-1] / "model.safetensors")


def test_alpha_zero_equals_plain_training_bit_for_bit(make_config, members, tmp_path):
    cfg = make_config("train.seed=7", "model.dropout=0.1")
    plain = train(cfg, tmp_path / "plain", results=str(tmp_path / "r"), quiet=True)
    student = with_teacher(make_config("train.seed=7", "model.dropout=0.1"),
                           DistillConfig((str(members[0]),), alpha=0.0, temperature=2.0))
    distilled = train(student, tmp_path / "kd", results=str(tmp_path / "r"), quiet=True, trainer_cls=DistillTrainer)
    a, b = _final_weights(tmp_path / "plain"), _final_weights(tmp_path / "kd")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert plain["val_loss"] == distilled["val_loss"] and plain["run_id"] != distilled["run_id"]


def test_alpha_positive_changes_training(make_config, members, tmp_path):
    cfg = with_teacher(make_config("train.tokens=1280"), DistillConfig((str(members[0]),), 0.5, 2.0))
    train(cfg, tmp_path / "kd", results=str(tmp_path / "r"), quiet=True, trainer_cls=DistillTrainer)
    train(make_config("train.tokens=1280"), tmp_path / "plain", results=str(tmp_path / "r"), quiet=True)
    a, b = _final_weights(tmp_path / "plain"), _final_weights(tmp_path / "kd")
    assert not all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_kl_zero_when_student_equals_teacher(temperature):
    logits = torch.randn(2, 5, 11) * 3
    assert kd_loss(logits, torch.log_softmax(logits, -1), temperature).abs().item() < 1e-5
    assert kd_loss(logits, torch.log_softmax(logits.flip(-1), -1), temperature).item() > 1e-2


def test_kl_zero_for_a_student_that_is_its_teacher(make_config, members, tmp_path):
    cfg = with_teacher(make_config(), DistillConfig((str(members[1]),), alpha=1.0, temperature=3.0))
    trainer = DistillTrainer(cfg, tmp_path / "s", quiet=True)
    trainer.model.load_state_dict(load_weights(members[1] / "checkpoints" / "best.safetensors"))
    trainer.model.eval()
    x, y = trainer.loader.batch(0)
    assert trainer.compute_loss(x, y).abs().item() < 1e-5


def test_ensemble_teacher_is_the_logit_average(make_config, members, tmp_path):
    from scarce.ensemble import combine_logprobs, load_member

    cfg = with_teacher(make_config(), DistillConfig(tuple(str(m) for m in members), 0.5, 1.0))
    trainer = DistillTrainer(cfg, tmp_path / "s", quiet=True)
    x, _ = trainer.loader.batch(0)
    lps = torch.stack([torch.log_softmax(load_member(m)(x), -1) for m in members])
    assert torch.allclose(trainer.teacher_logprobs(x), combine_logprobs(lps, "logit"), atol=1e-5)


def test_bad_distill_settings():
    with pytest.raises(ValueError, match="alpha"):
        DistillConfig(("x",), alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        DistillConfig(("x",), temperature=0)
