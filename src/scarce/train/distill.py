"""Logit distillation: the `distill` objective, against frozen teachers (one run, or an ensemble).

Loss = (1 - alpha) * CE(student, data) + alpha * T^2 * KL(teacher_T || student_T), where _T is the
softmax at temperature T; the T^2 keeps the gradient scale of the soft term independent of T
(Hinton et al., 2015). The teachers are frozen, in inference mode, and their logits are computed on
the fly for each batch. Chain distillation (member k learns from member k-1) keeps one teacher in
memory; an ensemble teacher (its members combined as `objective.combine` says) holds all of them
during training, whereas ensemble evaluation never holds more than one.

The settings are the run config's `objective` section, so they are part of the run id and a killed
distillation run resumes with the same teachers.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from scarce.config import ObjectiveConfig
from scarce.ensemble import combine_logprobs
from scarce.errors import UserError
from scarce.rundir import Member, load_model


def kd_loss(student_logits: torch.Tensor, teacher_logprobs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), mean over tokens. Logits/log-probs (..., V)."""
    t = temperature
    student = torch.log_softmax(student_logits.float() / t, dim=-1).flatten(0, -2)  # (N, V)
    teacher = torch.log_softmax(teacher_logprobs.float() / t, dim=-1).flatten(0, -2)  # (N, V)
    return t * t * F.kl_div(student, teacher, log_target=True, reduction="batchmean")


class CrossEntropy:
    """The plain objective: the model's own loss on the data (cross-entropy, plus the multi-token term)."""

    def __call__(self, forward, x: torch.Tensor, y: torch.Tensor, real: bool = True) -> torch.Tensor:
        return forward(x, y)


class Distillation:
    """Cross-entropy on the data mixed with the KL to the frozen teachers' combined distribution."""

    def __init__(self, cfg: ObjectiveConfig, vocab_size: int, device: str):
        self.cfg = cfg
        self.teachers = [load_model(t, device) for t in cfg.teachers]
        for path, teacher in zip(cfg.teachers, self.teachers):
            if teacher.cfg.vocab_size != vocab_size:
                raise UserError(f"objective.teachers: {path} has vocabulary {teacher.cfg.vocab_size}, "
                                f"the student {vocab_size}")

    @torch.inference_mode()
    def teacher_logprobs(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probs (B, T, V) of the teacher: the members combined when there are several."""
        lps = [torch.log_softmax(t(x).float(), dim=-1) for t in self.teachers]
        return lps[0] if len(lps) == 1 else combine_logprobs(torch.stack(lps), self.cfg.combine)

    def __call__(self, forward, x: torch.Tensor, y: torch.Tensor, real: bool = True) -> torch.Tensor:
        if not real and self.cfg.distill_on == "real":  # text the teachers wrote: their labels already
            return forward(x, y)
        logits = forward(x)  # (B, T, V)
        # GPT.forward's loss; there the CPU's fused head and cross-entropy sums it chunk by chunk, so the two
        # agree to rounding, not bit for bit.
        ce = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        a = self.cfg.alpha
        # No shortcut at alpha=0: 1*CE + 0*KL is this CE exactly, so the test of that covers this path.
        soft = kd_loss(logits, self.teacher_logprobs(x).clone(), self.cfg.temperature)
        return (1 - a) * ce + a * soft


class CycleChain(Distillation):
    """Chain distillation inside one cyclic run (hyper-epoch populations): from cycle chain_from on, each cycle
    learns from the snapshot that ended the cycle before it, one teacher in memory, read from the run's snapshot
    file (so a resumed run has exactly the teacher the uninterrupted one had). Earlier cycles, and a cycle whose
    predecessor left no snapshot, train on the data alone."""

    def __init__(self, cfg: ObjectiveConfig, vocab_size: int, device: str):
        self.cfg, self.vocab_size, self.device = cfg, vocab_size, device
        self.teachers: list = []
        self.source: Path | None = None

    def at_cycle(self, cycle: int, run_dir: Path, snapshot: Path) -> None:
        """Hold the teacher of `cycle`: the snapshot file `snapshot` of run `run_dir` (the weights at the end of
        cycle - 1), or none before chain_from."""
        source = snapshot if cycle >= self.cfg.chain_from else None
        if source == self.source:
            return
        if source is not None and not source.is_file():
            raise UserError(f"{run_dir}: chain distillation of cycle {cycle} needs the snapshot {source}, which is "
                            "missing; start the run again in another folder")
        self.teachers = [] if source is None else [Member(run_dir, source).load(self.device)]
        self.source = source

    def __call__(self, forward, x: torch.Tensor, y: torch.Tensor, real: bool = True) -> torch.Tensor:
        if not self.teachers:
            return forward(x, y)
        return super().__call__(forward, x, y, real)


def build_objective(cfg: ObjectiveConfig, vocab_size: int, device: str):
    """The training objective the config names."""
    if cfg.kind == "chain":
        return CycleChain(cfg, vocab_size, device)
    return Distillation(cfg, vocab_size, device) if cfg.kind == "distill" else CrossEntropy()
