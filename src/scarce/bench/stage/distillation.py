"""The distillation stage (findings 5a, 5b, 5c): at the largest size, logit distillation (`scarce.recipes.distill`)
of its ensemble into one student, of one member into a student of its own size, and a chain. Its settings are
`BenchPreset.distill`, `distill_alpha` and `distill_temperature`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scarce.bench.common import bench_row
from scarce.bench.findings import Bench, difference, finding, judge, share_kept
from scarce.bench.presets import BenchPreset
from scarce.bench.stage.base import Measure, Stage, StageContext
from scarce.bench.stages import Runs
from scarce.recipes.distill import chain_distill, distill_points
from scarce.report.report import Doc, write_csv
from scarce.runs.store import RunRow

DISTILL_FINDINGS = (
    ("a", "an ensemble distilled into one student keeps most of its gain (logit distillation on the budget)",
     "Kim et al.: 83% of an 8-member ensemble's gain (their protocol: generated text, 5a-seq)"),
    ("b", "self-distillation helps (logit distillation on the budget)",
     "Kim et al.: self-distillation improves a model of the same size"),
    ("c", "chain distillation beats independent members", "Slowrun: chain (alpha 0.5, T 1) took 8 members from 7x to 8x"),
)


@dataclass
class DistillStage:
    """Logit distillation at the largest size: the ensemble's student, one member's (self-distillation), and the
    chain (member 0 first)."""

    student: RunRow
    self_student: RunRow
    chain: list[RunRow]


def distill_stage(p: BenchPreset, runs: Runs, chosen: dict, members: list[RunRow]) -> DistillStage:
    """At the largest size, logit distillation (`scarce.recipes.distill`) at the preset's alpha and temperature:
    the ensemble into a student, one member into a student of its own size (self-distillation), and a chain of
    K members, each learning from the one before."""
    point, k = {**chosen["point"], "tags.stage": "distill"}, len(members)
    student, self_student = runs.run("distill", distill_points(point, [r.run_dir for r in members],
                                                               p.distill_alpha, p.distill_temperature))
    chain = chain_distill(point, members[0], k, p.distill_alpha, p.distill_temperature,
                          lambda points: runs.run("distill", points))
    return DistillStage(student, self_student, chain)


def distillation_json(d: DistillStage) -> dict:
    return {"student": bench_row(d.student), "self": bench_row(d.self_student), "chain": [bench_row(r) for r in d.chain]}


def distillation_findings(b: Bench) -> list[dict]:
    """5a, 5b, 5c: logit distillation on the budget, with seed noise (each student is one run)."""
    dist = b.stages.named.get("distillation")
    if dist is None or b.p.largest not in b.ens:
        none = "not run (the preset does not distill)"
        return [finding((f"5{x}", name, pub), "not run", {}, "", none) for x, name, pub in DISTILL_FINDINGS]
    rows = b.ens[b.p.largest]["rows"]
    one, student, self_ = (b.m.runs([r])[:, 0] for r in (rows[0], dist.student, dist.self_student))
    ens = b.m.prefixes(rows)[:, -1]
    chain = b.m.prefixes(dist.chain)[:, -1]
    ens_loss, chain_loss = b.ens[b.p.largest]["prefix_val_loss"][-1], _ensemble_loss(b, dist.chain)
    share = share_kept(one, ens, student, (rows[0].val_loss - dist.student.val_loss) / (rows[0].val_loss - ens_loss))
    self_gain = difference(one, self_, rows[0].val_loss - dist.self_student.val_loss)
    chain_gain = difference(ens, chain, ens_loss - chain_loss)
    k = len(rows)
    return [
        finding(("5a", DISTILL_FINDINGS[0][1], DISTILL_FINDINGS[0][2]), judge(share, 0.5, "above"), share,
                f"share of the {k}-member ensemble's gain over one member kept by the student",
                f"student val {dist.student.val_loss:.4f}", above=0.5),
        finding(("5b", DISTILL_FINDINGS[1][1], DISTILL_FINDINGS[1][2]), judge(self_gain, 0.0, "above"), self_gain,
                "nats (teacher val - self-distilled student val)",
                f"self-distilled val {dist.self_student.val_loss:.4f}", above=0.0),
        finding(("5c", DISTILL_FINDINGS[2][1], DISTILL_FINDINGS[2][2]), judge(chain_gain, 0.0, "above"), chain_gain,
                f"nats (independent {k}-ensemble val - chain {k}-ensemble val)",
                f"alpha {b.p.distill_alpha}, T {b.p.distill_temperature}", above=0.0),
    ]


def _ensemble_loss(b: Bench, rows: list) -> float:
    """The mean val loss of the ensemble of `rows` from its per-window NLLs."""
    w = b.m.ev.prefixes(rows)[-1]
    return float(w.sum() / (w.size * b.m.tpw))


def distillation_section(doc: Doc, out: Path, d: dict | None) -> None:
    """The students' and the chain's val losses."""
    if not d:
        return
    doc.h2("Distillation at the largest size")
    rows = [["ensemble to student", d["student"]["val_loss"], d["student"]["run_id"]],
            ["self-distillation", d["self"]["val_loss"], d["self"]["run_id"]]]
    rows += [[f"chain member {i}", r["val_loss"], r["run_id"]] for i, r in enumerate(d["chain"])]
    doc.table(["run", "val_loss", "run_id"], rows)
    write_csv(out / "tables" / "distillation.csv", ["run", "val_loss", "run_id"], rows)


class Distillation(Stage):
    """bench.json's `distillation`: students of the largest size (ensemble to student, self-distillation, chain)
    with their val losses."""

    name = "distillation"
    findings_before = "6"

    def wanted(self, p: BenchPreset, recipe: str) -> bool:
        return recipe == "ensemble" and p.members > 1 and p.distill

    def run(self, ctx: StageContext) -> DistillStage:
        largest = ctx.p.largest
        return distill_stage(ctx.p, ctx.runs, ctx.stages.regularized.chosen[largest],
                             ctx.stages.ensembles.members[largest])

    def results(self, ms: Measure, result: DistillStage) -> dict:
        return distillation_json(result)

    def findings(self, b: Bench, entry: dict | None) -> list[dict]:
        return distillation_findings(b)

    def report(self, doc: Doc, out: Path, entry: dict | None, fits: dict) -> None:
        distillation_section(doc, out, entry)


STAGE = Distillation()
