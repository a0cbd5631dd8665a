"""Distillation recipes over existing runs: an ensemble (or one run) distilled into one student, by
logits or by sequences. Both produce a config and hand it to the executor layer; chain distillation
is a mode of `scarce.recipes.ensemble.ensemble`.

- Ensemble to student: the student trains against the teachers' combined distribution (objective
  section 'distill'); it gets a seed no member used.
- Sequence level (Kim & Rush, 2016): text sampled from the teachers becomes a token store (same
  tokenizer, select and val), and the student trains on a mix of synthetic and real batches (config
  section `mix`). Self-distillation is the case of one teacher of the student's size.
"""

from __future__ import annotations

from pathlib import Path

from scarce.config import MixConfig, RunConfig
from scarce.data.store import open_store
from scarce.ensemble import evaluate_ensemble
from scarce.errors import UserError
from scarce.recipes.ensemble import distill_from, ensemble_group
from scarce.rundir import Member
from scarce.runs.launch import Job, absolute_paths, train_all
from scarce.sample import synthesize


def _evaluate(run_dir: Path, cfg: RunConfig, out: Path, device: str) -> dict:
    """A student's val loss, evaluated as the members are."""
    store = open_store(cfg.data)
    r = evaluate_ensemble([Member.of_run(run_dir)], store.split("val"), store.token_bytes(), cfg.model.seq_len,
                          cfg.train.batch_size, device=device, cache_dir=out)
    return {"run_dir": str(run_dir), "val_loss": r["member_loss"][0], "val_bpb": r["member_bpb"][0]}


def distill_student(base: RunConfig, teachers: list[Path], out: str | Path, alpha: float = 0.5,
                    temperature: float = 2.0, combine: str = "logit", results: str | None = None,
                    quiet: bool = False, device: str = "cpu") -> dict:
    """Train one model of the base config against the ensemble of `teachers` into OUT/student; returns its
    run dir and val loss (evaluated like the members)."""
    cfg = distill_from(absolute_paths(base), teachers, alpha, temperature, combine)
    cfg.train.seed = base.train.seed + len(teachers)  # a seed no member used
    distill = {"teachers": cfg.objective.teachers, "alpha": alpha, "temperature": temperature}
    cfg.tags.update(group=ensemble_group(base, "", distill, "student"), member="student")
    run_dir = Path(out) / "student"
    train_all([Job(cfg, run_dir)], None, results, quiet)
    return {**_evaluate(run_dir, cfg, Path(out), device), "alpha": alpha, "temperature": temperature,
            "teachers": len(teachers)}


def seq_distill(base: RunConfig, teachers: list[Path], out: str | Path, synthetic_tokens: int,
                synthetic_frac: float = 0.9, temperature: float = 1.0, top_k: int = 0,
                results: str | None = None, quiet: bool = False, device: str = "cpu") -> dict:
    """Sample `synthetic_tokens` from the teacher(s) into OUT/synthetic (once), then train one model of the
    base config on `synthetic_frac` synthetic : the rest real batches into OUT/seq_student."""
    if not 0 <= synthetic_frac <= 1:
        raise UserError(f"the synthetic share must be in [0, 1], got {synthetic_frac}")
    out = Path(out)
    synthetic = out / "synthetic"
    if not (synthetic / "manifest.json").is_file():
        synthesize([Path(t).resolve() for t in teachers], synthetic, synthetic_tokens, temperature, top_k,
                   seed=base.train.seed, device=device)
    cfg = absolute_paths(base)
    cfg.train.seed = base.train.seed + len(teachers)
    cfg.mix = MixConfig(str(synthetic.resolve()), synthetic_frac)
    mix = {"store": cfg.mix.store, "synthetic_frac": synthetic_frac}
    cfg.tags.update(group=ensemble_group(base, "", mix, "seq_student"), member="seq_student")
    run_dir = out / "seq_student"
    train_all([Job(cfg, run_dir)], None, results, quiet)
    return {**_evaluate(run_dir, cfg, out, device), "synthetic_tokens": synthetic_tokens,
            "synthetic_frac": synthetic_frac, "temperature": temperature}
