"""Logit distillation: alpha=0 is plain training (to rounding: the plain loss is the fused head and
cross-entropy on the CPU); the KL term vanishes when student == teacher."""

from __future__ import annotations

import pytest
import torch

from scarce.config import ObjectiveConfig, RunConfig
from scarce.ensemble import combine_logprobs
from scarce.errors import UserError
from scarce.recipes.ensemble import distill_from
from scarce.rundir import best_weights, load_model, load_weights
from scarce.runs.launch import train
from scarce.train.distill import Distillation, kd_loss
from scarce.train.trainer import Trainer


def _final_weights(run_dir):
    return load_weights(sorted((run_dir / "checkpoints").glob("step_*"))[-1] / "model.safetensors")


def test_alpha_zero_equals_plain_training(make_config, members, tmp_path):
    cfg = make_config("train.seed=7", "model.dropout=0.1")
    plain = train(cfg, tmp_path / "plain", results=str(tmp_path / "r"), quiet=True)
    student = distill_from(make_config("train.seed=7", "model.dropout=0.1"), [members[0]], alpha=0.0, temperature=2.0)
    distilled = train(student, tmp_path / "kd", results=str(tmp_path / "r"), quiet=True)
    a, b = _final_weights(tmp_path / "plain"), _final_weights(tmp_path / "kd")
    for k in a:  # equal up to rounding: the plain run's cross-entropy is fused with the head, the student's is not
        torch.testing.assert_close(a[k], b[k], atol=5e-5, rtol=1e-4)
    assert plain["val_loss"] == pytest.approx(distilled["val_loss"], rel=1e-5) and plain["run_id"] != distilled["run_id"]


def test_alpha_positive_changes_training(make_config, members, tmp_path):
    cfg = distill_from(make_config("train.tokens=1280"), [members[0]], 0.5, 2.0)
    train(cfg, tmp_path / "kd", results=str(tmp_path / "r"), quiet=True)
    train(make_config("train.tokens=1280"), tmp_path / "plain", results=str(tmp_path / "r"), quiet=True)
    a, b = _final_weights(tmp_path / "plain"), _final_weights(tmp_path / "kd")
    assert not all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_kl_zero_when_student_equals_teacher(temperature):
    logits = torch.randn(2, 5, 11) * 3
    assert kd_loss(logits, torch.log_softmax(logits, -1), temperature).abs().item() < 1e-5
    assert kd_loss(logits, torch.log_softmax(logits.flip(-1), -1), temperature).item() > 1e-2


def test_kl_zero_for_a_student_that_is_its_teacher(make_config, members, tmp_path):
    cfg = distill_from(make_config(), [members[1]], alpha=1.0, temperature=3.0)
    trainer = Trainer(cfg, tmp_path / "s", quiet=True)
    assert isinstance(trainer.objective, Distillation)
    trainer.model.load_state_dict(load_weights(best_weights(members[1])))
    trainer.model.eval()
    x, y = trainer.loader.batch(0)
    assert trainer.compute_loss(x, y).abs().item() < 1e-5


@pytest.mark.parametrize("combine", ["logit", "prob"])
def test_ensemble_teacher_combines_its_members(make_config, members, tmp_path, combine):
    cfg = distill_from(make_config(), members, 0.5, 1.0, combine)
    trainer = Trainer(cfg, tmp_path / "s", quiet=True)
    x, _ = trainer.loader.batch(0)
    lps = torch.stack([torch.log_softmax(load_model(m)(x), -1) for m in members])
    assert torch.allclose(trainer.objective.teacher_logprobs(x), combine_logprobs(lps, combine), atol=1e-5)


def test_bad_distill_settings(members):
    with pytest.raises(ValueError, match="alpha"):
        ObjectiveConfig("distill", ["x"], alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        ObjectiveConfig("distill", ["x"], temperature=0)
    with pytest.raises(ValueError, match="teacher"):
        ObjectiveConfig("distill", [])
    with pytest.raises(UserError, match="temperature"):
        distill_from(RunConfig(), members, 0.5, -1.0)
