"""The synthetic stage (findings 5a-seq, 5b-seq, 7): students of the largest size's chosen setting on real plus
generated text (`scarce.recipes.synthetic`), written by that size's ensemble, and the recipes they make. Its
settings are `BenchPreset.synthetic*`."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scarce.bench.common import bench_row, estimate, identified, progress_lines, quietly, recipe_entry
from scarce.bench.findings import Bench, difference, finding, fmt_est, judge, share_kept
from scarce.bench.measured import Measured, seed_noise
from scarce.bench.presets import BenchPreset
from scarce.bench.stage.base import Measure, Stage, StageContext
from scarce.bench.stages import Runs
from scarce.device import pick_device
from scarce.recipes.common import run_train_tokens
from scarce.recipes.synthetic import StudentGroup, student_group
from scarce.report.report import Doc, plot_fit_of, write_csv
from scarce.runs.store import RunRow
from scarce.sample import Sampling
from scarce.scaling import fit_power_law
from scarce.synth import SynthSpec

SYNTHETIC_STREAMS = 128
"""Rows the teachers write together (one shard of the synthetic store each batch)."""


def synthetic_stage(p: BenchPreset, runs: Runs, members: list[RunRow]) -> SyntheticStage:
    """Students of the largest size's chosen setting on real plus generated text, through the recipe
    (`scarce.recipes.synthetic`): the ensemble of `members` writes each multiple of the budget (temperature 1),
    the share of synthetic batches is chosen on select at the middle multiple and kept for the others; and one
    member writes the smallest multiple for its own student (self-distillation through generated text)."""
    base = copy.deepcopy(members[0].config)
    base.tags = {"stage": "synthetic"}
    teachers, budget, k = [r.run_dir for r in members], run_train_tokens(members[0]), len(members)
    out, device = runs.out / "runs" / "synthetic", pick_device()

    def group(name: str, writers: list, multiple: int, fracs: tuple, seeds: tuple) -> StudentGroup:
        spec = SynthSpec(multiple * budget, p.synthetic_mode, streams=SYNTHETIC_STREAMS, sampling=Sampling(1.0))
        runs.log(f"synthetic {name}: {len(writers)} teacher(s) write {spec.tokens:,} tokens; students at share(s) "
                 f"{', '.join(f'{f:g}' for f in fracs)}, {len(seeds)} seed(s)")
        return student_group(base, writers, out / name, spec, fracs, seeds, p.synthetic_passes, device=device,
                             progress=progress_lines(runs.log))

    top, ordered = max(p.synthetic), sorted(p.synthetic)
    middle = ordered[len(ordered) // 2]  # the share is tuned here: at 1x generated text barely moves the student
    seeds = {m: tuple(k + j for j in range(p.synthetic_members if m == top else 1)) for m in ordered}
    tuned = runs.students([group(f"x{middle}", teachers, middle, p.synthetic_fracs, seeds[middle])])[0]
    frac = tuned["frac"]
    tuning = [{"frac": s["frac"], "select_loss": s["select_loss"]} for s in tuned["students"]]
    others = [m for m in ordered if m != middle]
    groups = [group(f"x{m}", teachers, m, (frac,), seeds[m]) for m in others]
    if p.synthetic_self_frac:
        groups.append(group("self", teachers[:1], min(p.synthetic), (p.synthetic_self_frac,), (k,)))
    rest = runs.students(groups)
    trained = {middle: tuned, **dict(zip(others, rest))}
    by_multiple = {m: [row for s, row in zip(trained[m]["students"], trained[m]["rows"]) if s["frac"] == frac]
                   for m in ordered}
    self_row = rest[-1]["rows"][0] if p.synthetic_self_frac else None
    tried = [row for s, row in zip(tuned["students"], tuned["rows"]) if s["frac"] != frac]
    return SyntheticStage(frac, tuning, p.synthetic_mode, budget, by_multiple, self_row, tried)


@dataclass
class SyntheticStage:
    """Students on real plus generated text: the share chosen on select (`tuning`: every share tried with its select
    loss), multiple -> the students at it, the self-distilled student, and the tuning's students not chosen."""

    frac: float
    tuning: list[dict]
    mode: str
    budget: int
    students: dict[int, list[RunRow]]
    self_student: RunRow | None
    tried: list[RunRow]


def add_synthetic(synthetic: SyntheticStage, m: Measured, into: tuple[dict, dict, dict], teachers: list) -> None:
    """Recipes from the synthetic stage (into `into`: recipes, draws, fits): the student chosen on select among the
    generated sizes, the ensemble of the students at the largest size when there are several, the teachers'
    ensemble with those students added (teachers first); and the student's val loss against generated tokens as a
    power law (three sizes or more), its interval from the paired draws."""
    recipes, draws, fits = into
    firsts = {int(k): rows[0] for k, rows in synthetic.students.items()}
    best = min(firsts.values(), key=lambda r: r.select_loss)
    recipes["synthetic-student"] = recipe_entry(best.val_loss, best.val_bpb, best.flops, [best.id])
    draws["synthetic-student"] = m.runs([best])[:, 0]
    top = synthetic.students[max(synthetic.students, key=int)]
    if len(top) > 1:
        e = m.ev.ensemble(top, "synthetic")
        name = f"synthetic-ensemble-k{len(top)}"
        recipes[name] = recipe_entry(e["prefix_val_loss"][-1], e["prefix_val_bpb"][-1], sum(r.flops for r in top),
                                     [r.id for r in top])
        draws[name] = m.prefixes(top)[:, -1]
    if teachers:
        both = list(teachers) + list(top)
        e = m.ev.ensemble(both, "teachers-synthetic")
        name = f"teachers+synthetic-k{len(both)}"
        recipes[name] = recipe_entry(e["prefix_val_loss"][-1], e["prefix_val_bpb"][-1], sum(r.flops for r in both),
                                     [r.id for r in both])
        draws[name] = m.prefixes(both)[:, -1]
    if len(firsts) >= 3:
        ms = sorted(firsts)
        fits["synthetic"] = quietly(fit_power_law, [k * synthetic.budget for k in ms],
                                    [firsts[k].val_loss for k in ms], y_draws=m.runs([firsts[k] for k in ms]))


def repeated_students(synthetic: SyntheticStage) -> list:
    """The synthetic students that repeat one setting (the multiple with the most seeds)."""
    return max(synthetic.students.values(), key=len)


def synthetic_json(synthetic: SyntheticStage) -> dict:
    return {"mode": synthetic.mode, "frac": synthetic.frac, "tuning": synthetic.tuning, "budget": synthetic.budget,
            "students": {str(m): [{**bench_row(r), "generated_tokens": int(m) * synthetic.budget} for r in rows]
                         for m, rows in synthetic.students.items()},
            "self": None if synthetic.self_student is None else bench_row(synthetic.self_student)}


SYNTHETIC_FINDINGS = (
    ("5a-seq", "an ensemble's student on text the ensemble writes keeps most of its gain",
     "Kim et al. (Section 5: unconditional samples at T 1, real:synthetic 10:90): 83% of an 8-member ensemble's gain"),
    ("5b-seq", "self-distillation through generated text helps",
     "Kim et al. (Section 5: real:synthetic 25:75): the self-distilled student beats its teacher"),
    ("7", "the student's loss falls as the teachers write more",
     "arXiv 2603.18534: loss falls with generations per real document up to 32 (1.48x; stitched megadocs 1.80x)"),
)


def synthetic_findings(b: Bench) -> list[dict]:
    """5a-seq and 5b-seq under Kim et al.'s protocol (students trained on generated text), and 7: the student's
    val loss against generated tokens, its fitted asymptote, and whether the most generated text beats the least
    (paired). The students' seed noise is their own repeats' (a seed of a student moves its share by far more than
    a member's seed moves the ensemble)."""
    syn = b.stages.named.get("synthetic")
    if syn is None or b.p.largest not in b.ens:
        none = "not run (the preset has no synthetic stage)"
        return [finding((fid, name, pub), "not run", {}, "", none) for fid, name, pub in SYNTHETIC_FINDINGS]
    rows = b.ens[b.p.largest]["rows"]
    k = len(rows)
    firsts = {int(x): r[0] for x, r in syn.students.items()}
    chosen = min(firsts, key=lambda x: firsts[x].select_loss)  # on select, never val
    seeds = next(r for x, r in syn.students.items() if int(x) == chosen)
    one, ens = b.m.runs([rows[0]])[:, 0], b.m.prefixes(rows)[:, -1]
    # the students' mean loss: with several seeds, the share of the average student, not of one
    mean_student = b.m.of(b.m.ev.windows(seeds).mean(axis=0), [r.id for r in seeds])
    student_loss = float(np.mean([r.val_loss for r in seeds]))
    ens_loss = b.ens[b.p.largest]["prefix_val_loss"][-1]
    share = share_kept(one, ens, mean_student, (rows[0].val_loss - student_loss) / (rows[0].val_loss - ens_loss))
    noise = b.m.unit_noise.get(seeds[0].id, b.m.noise)
    vals = ", ".join(f"{r.val_loss:.4f}" for r in seeds)
    out = [finding(SYNTHETIC_FINDINGS[0], judge(share, 0.5, "above"), share,
                    f"share of the {k}-member ensemble's gain over one member kept by the student"
                    + (f" (the mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""),
                    f"student on {chosen}x the budget of {syn.mode} text (share {syn.frac:g}, chosen on "
                    f"select): val {vals}; seed noise sd {noise.seed_sd:.4f} nats on {noise.df} degrees of freedom",
                    above=0.5)]
    if syn.self_student:
        gain = difference(one, b.m.runs([syn.self_student])[:, 0], rows[0].val_loss - syn.self_student.val_loss)
        out.append(finding(SYNTHETIC_FINDINGS[1], judge(gain, 0.0, "above"), gain,
                            "nats (teacher val - its student's val)",
                            f"one member writes {min(firsts)}x the budget; its student (share "
                            f"{b.p.synthetic_self_frac:g}): val {syn.self_student.val_loss:.4f}", above=0.0))
    else:
        out.append(finding(SYNTHETIC_FINDINGS[1], "not run", {}, "", "not run"))
    ms = sorted(firsts)
    law = b.fits.get("synthetic")
    e = estimate(law, "E") if identified(law) else {}
    fall = {}
    if len(ms) >= 2:
        d = b.m.runs([firsts[ms[0]], firsts[ms[-1]]])
        fall = difference(d[:, 0], d[:, 1], firsts[ms[0]].val_loss - firsts[ms[-1]].val_loss)
    curve = ", ".join(f"{x}x: {firsts[x]['val_loss']:.4f}" for x in ms)
    asymptote = (f"asymptote {fmt_est(e)}" if e else "asymptote not identified" if law is not None
                 else "fewer than 3 sizes: no fit")
    out.append(finding(SYNTHETIC_FINDINGS[2], judge(fall, 0.0, "above") if fall else "not run", fall,
                        f"nats (student val at {ms[0]}x - at {ms[-1]}x generated, paired)",
                        f"student val by generated tokens {curve}; {asymptote}", fall=fall, asymptote=e, above=0.0))
    return out


def synthetic_section(doc: Doc, out: Path, syn: dict | None, fits: dict) -> None:
    """The students' losses by generated tokens, and their law."""
    if not syn:
        return
    doc.h2("Students on generated text")
    doc.p(f"The largest size's ensemble writes {syn['mode']} text at temperature 1 (`scarce synth`); each student of "
          f"the chosen setting trains on the real budget mixed with it, a share {syn['frac']:g} of its batches "
          "synthetic (chosen on select among " + ", ".join(f"{t['frac']:g}" for t in syn["tuning"]) + ").")
    rows = [[int(m), s["generated_tokens"], s["select_loss"], s["val_loss"], s["run_id"]]
            for m, students in sorted(syn["students"].items(), key=lambda x: int(x[0])) for s in students]
    if syn.get("self"):
        rows.append(["self (one member writes)", "", syn["self"]["select_loss"], syn["self"]["val_loss"],
                     syn["self"]["run_id"]])
    cols = ["generated (x budget)", "generated_tokens", "select_loss", "val_loss", "run_id"]
    doc.table(cols, rows)
    write_csv(out / "tables" / "synthetic.csv", cols, rows)
    if plot_fit_of(fits.get("synthetic"), out / "plots" / "synthetic.png", xlabel="generated tokens G",
                 ylabel="student val loss (nats/token)", title="Student against generated tokens"):
        doc.img("plots/synthetic.png", "The student's val loss against the tokens its teachers wrote, with the "
                "power law L(G) = E + A·G^(-alpha) and its 95% band (log-log); E is the loss with unlimited "
                "generated text of this kind.")
    else:
        doc.p("Student against generated tokens: not fitted (it needs at least 3 sizes of generation).")


class Synthetic(Stage):
    """bench.json's `synthetic`: the mode, the share chosen on select (and the shares tried), and per multiple of the
    budget the students' val losses; the self-distilled student."""

    name = "synthetic"

    def wanted(self, p: BenchPreset, recipe: str) -> bool:
        return recipe == "ensemble" and p.members > 1 and bool(p.synthetic)

    def run(self, ctx: StageContext) -> SyntheticStage:
        return synthetic_stage(ctx.p, ctx.runs, ctx.stages.ensembles.members[ctx.p.largest])

    def noise(self, m: Measured, p: BenchPreset, result: SyntheticStage) -> None:
        """The students that repeat one setting measure their own seed noise (a student's seed moves it by far more
        than a member's seed moves the ensemble)."""
        students = repeated_students(result)
        if len(students) >= 2:
            m.use([r.id for rows in result.students.values() for r in rows]
                  + ([result.self_student.id] if result.self_student else []), seed_noise(m.ev, p.n_boot, [students]))

    def results(self, ms: Measure, result: SyntheticStage) -> dict:
        add_synthetic(result, ms.m, (ms.recipes, ms.draws, ms.fits), ms.ens[ms.p.largest]["rows"] if ms.ens else [])
        return synthetic_json(result)

    def findings(self, b: Bench, entry: dict | None) -> list[dict]:
        return synthetic_findings(b)

    def describe(self, recipe: str) -> str | None:
        if recipe == "synthetic-student":
            return ("one model of the chosen setting on the budget mixed with text the ensemble writes, the size of "
                    "generation chosen on select")
        if recipe.startswith("synthetic-ensemble-k"):
            return (f"{recipe[len('synthetic-ensemble-k'):]} such students (seeds) at the largest generation, logits "
                    "averaged")
        if recipe.startswith("teachers+synthetic-k"):
            return (f"the teachers' ensemble with those students added ({recipe[len('teachers+synthetic-k'):]} "
                    "models), logits averaged")
        return None

    def report(self, doc: Doc, out: Path, entry: dict | None, fits: dict) -> None:
        synthetic_section(doc, out, entry, fits)


STAGE = Synthetic()
