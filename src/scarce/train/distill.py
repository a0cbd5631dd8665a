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


# ---------------------------------------------------------------------------------------------
# Sequence-level distillation: train on a mixture of real text and text sampled from a teacher
# (Kim & Rush, 2016). Self-distillation is the case where the teacher has the student's size.


def synthesize(teachers: list, out, tokens: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
               streams: int = 64, device: str = "cpu"):
    """A token store at `out` whose train split is `tokens` tokens sampled unconditionally from the
    teacher (the logit average of several), and whose tokenizer, select and val are the teacher's data's."""
    import json
    import shutil
    from pathlib import Path

    import numpy as np

    from scarce.data import store as ts
    from scarce.ensemble import load_member, read_config
    from scarce.sample import generate

    base = ts.open_store(read_config(teachers[0]).data)
    models = [load_member(t, device) for t in teachers]
    per_stream = -(-tokens // streams)
    ids = generate(models, base.eot_id, per_stream, temperature, top_k, seed, device=device, streams=streams)
    train = np.concatenate([[base.eot_id], ids.flatten().numpy()])[:tokens].astype(base.dtype)
    manifest = json.loads(json.dumps(base.manifest))
    manifest.update(created_at=ts._now(), synthetic={"teachers": [str(t) for t in teachers], "temperature": temperature,
                                                      "top_k": top_k, "seed": seed, "streams": streams})
    manifest["request"] = {**manifest["request"], "train_tokens": int(tokens), "synthetic_seed": seed}
    manifest["splits"]["train"] = ts._split_stats("train", train, base.token_bytes(), base.eot_id)

    def write(d: Path) -> None:
        for name in ("select.bin", "val.bin", ts.TOKENIZER):
            shutil.copyfile(base.path / name, d / name)
        train.tofile(d / "train.bin")

    ts._write_store(Path(out), manifest, write)
    return ts.open_store(out)


class MixLoader:
    """Draws each micro-batch from the synthetic loader with probability `synthetic_frac`, else from
    the real one; the choice is a pure function of (seed, step, micro), so resume stays exact. Epochs
    and the horizon are counted on the real data."""

    def __init__(self, real, synthetic, synthetic_frac: float, seed: int):
        self.real, self.synthetic, self.frac, self.seed = real, synthetic, synthetic_frac, seed

    def __getattr__(self, name):
        return getattr(self.real, name)

    def batch(self, step: int, micro: int = 0):
        import numpy as np

        use_synthetic = np.random.default_rng([self.seed, step, micro, 17]).random() < self.frac
        return (self.synthetic if use_synthetic else self.real).batch(step, micro)


def mixed(base: type[Trainer]) -> type[Trainer]:
    """`base` trained on the mixture in tags['mix'] = {'store': synthetic token store, 'synthetic_frac': f}."""

    class MixTrainer(base):
        def __init__(self, cfg: RunConfig, *args, **kwargs):
            super().__init__(cfg, *args, **kwargs)
            from scarce.data.loader import WindowLoader
            from scarce.data.store import open_store

            mix, t = cfg.tags["mix"], cfg.train
            synthetic = open_store(mix["store"])
            other = WindowLoader(synthetic.split("train"), cfg.model.seq_len, t.batch_size, t.grad_accum,
                                 t.seed, self.rt.rank, self.rt.world, t.window_jitter)
            self.loader = MixLoader(self.loader, other, float(mix["synthetic_frac"]), t.seed)

    return MixTrainer
