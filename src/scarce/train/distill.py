"""Logit distillation: train a student against a frozen teacher (one run, or a logit-averaged ensemble).

Loss = (1 - alpha) * CE(student, data) + alpha * T^2 * KL(teacher_T || student_T), where _T is the
softmax at temperature T; the T^2 keeps the gradient scale of the soft term independent of T
(Hinton et al., 2015). The teacher is frozen, in inference mode, and its logits are computed on the
fly for each batch. Chain distillation (member k learns from member k-1) keeps one teacher in
memory. An ensemble teacher is the logit average of its members, all held in memory during training
(K small models); evaluation of ensembles, by contrast, never holds more than one member.

The distillation settings live in the run's tags (`tags["distill"]`), so they are part of the run id
and a killed distillation run resumes with the same teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from scarce.config import RunConfig
from scarce.train.trainer import Trainer


@dataclass(frozen=True)
class DistillConfig:
    teachers: tuple[str, ...]
    """Run directories of the teacher; several form a logit-averaged ensemble teacher."""
    alpha: float = 0.5
    """Weight of the distillation term; 0 is plain training, 1 ignores the data labels."""
    temperature: float = 2.0
    """Softmax temperature of teacher and student in the KL term."""

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("distill.alpha: must be in [0, 1]")
        if self.temperature <= 0:
            raise ValueError("distill.temperature: must be > 0")
        if not self.teachers:
            raise ValueError("distill.teachers: give at least one teacher run")

    def to_tag(self) -> dict:
        return {"teachers": list(self.teachers), "alpha": self.alpha, "temperature": self.temperature}


def with_teacher(cfg: RunConfig, dc: DistillConfig) -> RunConfig:
    """A copy of `cfg` that distills from `dc`'s teacher (the settings go into the run id)."""
    cfg = RunConfig.from_dict(cfg.to_dict())
    cfg.tags["distill"] = dc.to_tag()
    return cfg


def kd_loss(student_logits: torch.Tensor, teacher_logprobs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), mean over tokens. Logits/log-probs (..., V)."""
    t = temperature
    student = torch.log_softmax(student_logits.float() / t, dim=-1).flatten(0, -2)  # (N, V)
    teacher = torch.log_softmax(teacher_logprobs.float() / t, dim=-1).flatten(0, -2)  # (N, V)
    return t * t * F.kl_div(student, teacher, log_target=True, reduction="batchmean")


class DistillTrainer(Trainer):
    """A Trainer whose objective mixes the data's cross-entropy with the frozen teacher's distribution."""

    def __init__(self, cfg: RunConfig, run_dir, results=None, quiet: bool = False):
        super().__init__(cfg, run_dir, results, quiet)
        from scarce.ensemble import load_member  # the ensemble module imports the trainer's package

        tag = cfg.tags.get("distill")
        if not isinstance(tag, dict):
            raise ValueError("DistillTrainer needs tags['distill'] (see with_teacher)")
        self.distill = DistillConfig(tuple(tag["teachers"]), float(tag["alpha"]), float(tag["temperature"]))
        self.teachers = [load_member(t, self.rt.device) for t in self.distill.teachers]
        for teacher in self.teachers:
            if teacher.cfg.vocab_size != self.cfg.model.vocab_size:
                raise ValueError("distill.teachers: a teacher's vocabulary differs from the student's")

    @torch.inference_mode()
    def teacher_logprobs(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probs (B, T, V) of the teacher: the logit average when there are several."""
        lps = [torch.log_softmax(t(x).float(), dim=-1) for t in self.teachers]
        return lps[0] if len(lps) == 1 else torch.log_softmax(torch.stack(lps).mean(0), dim=-1)

    def compute_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.forward(x)  # (B, T, V)
        ce = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())  # exactly GPT.forward's loss
        a = self.distill.alpha
        # No shortcut at alpha=0: 1*CE + 0*KL is CE bit for bit, so the test of that covers this path.
        soft = kd_loss(logits, self.teacher_logprobs(x).clone(), self.distill.temperature)
        return (1 - a) * ce + a * soft
