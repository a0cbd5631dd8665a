"""Students on real plus generated text: the "compute into data" recipe.

The teachers (one run, or an ensemble trained on the budget) write a synthetic store (`scarce.synth`), and a
student of the base config trains on the real store mixed with it: share `frac` of its micro-batches come from
the synthetic text (Kim et al., arXiv 2509.14786, Section 5: 90% for an ensemble teacher, 75% for
self-distillation), optionally with the logit-distillation term on the real batches as well. The share is
chosen on select (never val) among those given. The student's horizon is `passes` passes over the synthetic
text (at its share), and never fewer tokens than the base config trains.

`synthetic_chain` is chain distillation through generated text: each member learns from what the one before wrote.
Like every recipe it only produces configs and hands them to the executor layer.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from scarce.config import MixConfig, RunConfig, set_horizon
from scarce.data.store import open_store
from scarce.errors import UserError
from scarce.progress import Lines
from scarce.recipes.ensemble import distill_from, ensemble_group
from scarce.runs.launch import Job, absolute_paths, train_all
from scarce.synth import SynthSpec, synthesize


def base_tokens(cfg: RunConfig) -> int:
    """Training tokens of the base config (its horizon in epochs over its store, or in tokens)."""
    if cfg.train.tokens:
        return cfg.train.tokens
    if not cfg.train.epochs:
        raise UserError("the base config of a synthetic student needs a horizon in epochs or tokens")
    return math.ceil(cfg.train.epochs * open_store(cfg.data).split_tokens("train"))


def student_config(base: RunConfig, synthetic: list[tuple[str, float]], seed: int, passes: float = 2.0,
                   kd: dict | None = None, role: str = "synthetic_student") -> RunConfig:
    """The base config trained on its real store mixed with the synthetic stores at their shares, seed `seed`,
    for `passes` passes over the synthetic text (at least the base's own tokens); `kd` {teachers, alpha,
    temperature, combine} adds logit distillation on the real batches."""
    if not synthetic:
        raise UserError("a synthetic student needs at least one synthetic store")
    cfg = absolute_paths(base)
    (first, frac), rest = synthetic[0], synthetic[1:]
    cfg.mix = MixConfig(first, frac, [s for s, _ in rest], [f for _, f in rest])
    share = sum(f for _, f in synthetic)
    generated = sum(open_store(s).split_tokens("train") for s, _ in synthetic)
    tokens = max(base_tokens(base), math.ceil(passes * generated / share)) if share else base_tokens(base)
    cfg = set_horizon(cfg, tokens=tokens)
    if kd:
        cfg = distill_from(cfg, kd["teachers"], kd.get("alpha", 0.5), kd.get("temperature", 1.0),
                           kd.get("combine", "logit"))
        cfg.objective.distill_on = "real"
    cfg.train.seed = seed
    mix = {"stores": [s for s, _ in synthetic], "fracs": [f for _, f in synthetic], "passes": passes, "kd": kd or {}}
    cfg.tags.update(group=ensemble_group(base, "", mix, role), member=seed)
    return cfg


@dataclasses.dataclass
class StudentGroup:
    """A synthetic store and the students to train on it: the first seed at every share in `fracs` (the share is
    then chosen on select), the other seeds at the chosen share."""

    base: RunConfig
    store: str
    spec: SynthSpec
    out: Path
    fracs: tuple[float, ...]
    seeds: tuple[int, ...]
    passes: float = 2.0
    kd: dict | None = None

    def jobs(self, points: list[tuple[float, int]]) -> list[Job]:
        return [Job(student_config(self.base, [(self.store, f)], s, self.passes, self.kd),
                    self.out / f"f{f:g}-s{s}{'-kd' if self.kd else ''}") for f, s in points]

    def first(self) -> list[tuple[float, int]]:
        """What trains before the share is chosen: the first seed at every share, or every seed when there is
        one share to try."""
        if len(self.fracs) == 1:
            return [(self.fracs[0], s) for s in self.seeds]
        return [(f, self.seeds[0]) for f in self.fracs]


def student_group(base: RunConfig, teachers: list, out: str | Path, spec: SynthSpec,
                  fracs: tuple[float, ...] = (0.9,), seeds: tuple[int, ...] = (0,), passes: float = 2.0,
                  kd: dict | None = None, device: str = "cpu", progress: Lines | None = None) -> StudentGroup:
    """Generate OUT/synthetic from the teachers (once, resumable) and plan the students on it (`train_students`);
    `progress`: where the generation shows its tokens/s and ETA (`scarce.synth.synthesize`)."""
    if not fracs or not seeds:
        raise UserError("synthetic students need at least one share and one seed")
    out = Path(out)
    store = synthesize(teachers, out / "synthetic", spec, base.data or None, device=device, progress=progress)
    kd = {**kd, "teachers": [str(Path(t).resolve()) for t in teachers]} if kd else None
    return StudentGroup(base, str(store.path), spec, out, tuple(fracs), tuple(seeds), passes, kd)


def train_students(groups: list[StudentGroup], executor=None, results: str | None = None,
                   quiet: bool = True) -> list[dict]:
    """Train the students of every group in two batches at most: first what each group trains before its share is
    chosen (`StudentGroup.first`), all groups at once, then the other seeds of each group at its share chosen on
    select. Returns per group its synthetic store, spec, every student's row ({frac, seed, run_dir,
    select_loss, val_loss, ...}) and the chosen share."""
    def train(plan: list[tuple[int, float, int]]) -> list[dict]:  # (group index, share, seed)
        jobs = [job for i, f, s in plan for job in groups[i].jobs([(f, s)])]
        summaries = train_all(jobs, executor, results, quiet) if jobs else []
        return [{"frac": f, "seed": s, "run_dir": str(j.run_dir), **_brief(r)}
                for (_, f, s), j, r in zip(plan, jobs, summaries)]

    first = [(i, f, s) for i, g in enumerate(groups) for f, s in g.first()]
    done = train(first)
    tuning = {i: [r for (j, _, _), r in zip(first, done) if j == i] for i in range(len(groups))}
    chosen = {i: min(rows, key=lambda r: r["select_loss"])["frac"] for i, rows in tuning.items()}
    rest = [(i, chosen[i], s) for i, g in enumerate(groups) if len(g.fracs) > 1 for s in g.seeds[1:]]
    later = train(rest)
    return [{"synthetic": g.store, "spec": g.spec.as_dict(), "frac": chosen[i],
             "students": tuning[i] + [r for (j, _, _), r in zip(rest, later) if j == i]}
            for i, g in enumerate(groups)]


def synthetic_students(base: RunConfig, teachers: list, out: str | Path, spec: SynthSpec,
                       fracs: tuple[float, ...] = (0.9,), seeds: tuple[int, ...] = (0,), passes: float = 2.0,
                       kd: dict | None = None, executor=None, results: str | None = None, quiet: bool = True,
                       device: str = "cpu") -> dict:
    """Generate OUT/synthetic from the teachers (once, resumable), train students at every share in `fracs` with
    the first seed, choose the share on select, then train the other seeds at it (every seed at once when one
    share is given). Returns the synthetic store, every student's row ({frac, seed, run_dir, select_loss,
    val_loss, ...}) and the chosen share."""
    group = student_group(base, teachers, out, spec, fracs, seeds, passes, kd, device)
    return train_students([group], executor, results, quiet)[0]


def synthetic_chain(base: RunConfig, first: str | Path, out: str | Path, spec: SynthSpec, frac: float = 0.75,
                    members: int = 4, passes: float = 2.0, executor=None, results: str | None = None,
                    quiet: bool = True, device: str = "cpu") -> dict:
    """Chain distillation through generated text: member k trains on the budget mixed with what member k-1 wrote
    (member 0 is the trained run `first`), each generation with its own seed. Members train one after another,
    since each writes for the next. Returns the chain's run dirs (member 0 first) and the students' rows."""
    if members < 2:
        raise UserError(f"a chain needs at least 2 members, got {members}")
    chain, students = [str(Path(first).resolve())], []
    for k in range(1, members):
        r = synthetic_students(base, [chain[-1]], Path(out) / f"m{k}", dataclasses.replace(spec, seed=spec.seed + k),
                               (frac,), (base.train.seed + k,), passes, executor=executor, results=results,
                               quiet=quiet, device=device)
        chain.append(r["students"][0]["run_dir"])
        students.append(r["students"][0])
    return {"members": chain, "students": students}


def _brief(summary: dict) -> dict:
    keys = ("run_id", "select_loss", "val_loss", "val_bpb", "tokens_seen", "flops", "steps", "wall_seconds")
    return {k: summary.get(k) for k in keys}
