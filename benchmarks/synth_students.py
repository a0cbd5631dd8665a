"""Students on what the teachers write: the student's val loss against generated tokens, on cpu-small's budget.

    python benchmarks/synth_students.py --out OUT [--results RES] [--workers 2] [--sizes 1,4,16] [--seeds 4]
                                        [--fracs 0.75,0.9] [--forms-at 4] [--bench-json PATH]

1. Prepares cpu-small's stores as `scarce bench` does (the 8x store; the 1x budget of 100k tokens a prefix of it).
2. Trains the teachers: cpu-small's chosen regularized setting at depth 4 (lr 3e-3, weight decay 3.2, 8 epochs;
   benchmarks/results/bench_cpu_small.md), 4 seeds, with the bench's run settings.
3. Writes synthetic stores from the 4-member ensemble (logit average, temperature 1): unconditioned at the
   largest size (the smaller sizes are its prefixes), conditioned and megadoc at `--forms-at` x the budget.
4. Trains students of the teachers' config (`scarce.recipes.synthetic`): the share of synthetic batches chosen on
   select at `--forms-at` unconditioned, then `--seeds` seeds there (and their ensemble), one student with logit
   distillation on the real batches as well, every size, and the conditioned and megadoc forms.
5. Prints a table with each student's val loss, its gain share of the ensemble's gain over one member and its data
   efficiency against the reference law of `--bench-json` (cpu-small's committed bench.json by default: the same
   store, prepared deterministically; the teachers' val losses are printed beside that file's to check it).

Writes OUT/synth_students.json. Resumable: finished runs and stores are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from scarce.bench import CPU_FAMILY, ONE_EVALUATION, get_bench_preset
from scarce.config import apply_overrides, get_preset
from scarce.data.prepare import derive_store, prepare
from scarce.ensemble import evaluate_ensemble
from scarce.recipes.synthetic import synthetic_students
from scarce.rundir import Member
from scarce.runs.executors import make_executor
from scarce.runs.launch import Job, train_all
from scarce.sample import Sampling
from scarce.scaling.efficiency import fit_efficiency
from scarce.synth import SynthSpec

TEACHER = {"model.depth": 4, "optim.lr": 3e-3, "optim.weight_decay": 3.2, "train.epochs": 8}
KIM_ENSEMBLE_STUDENT = "Kim et al. (arXiv 2509.14786): 8-member ensemble -> student 3.3635, 83% of the ensemble's gain"
MEGADOCS = "arXiv 2603.18534: 32 generations per document 1.48x (rephrases), 1.80x (stitched megadocs)"


def stores(root: Path):
    p = get_bench_preset("cpu-small")
    base = prepare(p.corpus, root / "base", p.vocab_size, p.budget_tokens * max(p.multiples), p.select_tokens,
                   p.val_tokens, tokenizer_bytes=p.tokenizer_bytes, near_duplicates=p.near_duplicates,
                   heldout_window=p.heldout_window, log=lambda *a: None)
    return derive_store(base, root / f"train-{p.budget_tokens}", p.budget_tokens, log=lambda *a: None)


def teacher_config(store, seed: int):
    overrides = {**CPU_FAMILY, **TEACHER, "train.threads": 1, "train.eval_every": ONE_EVALUATION, "train.seed": seed}
    cfg = apply_overrides(get_preset("tiny"), overrides)
    cfg.data = str(store.path.resolve())
    cfg.tags = {"stage": "synth-teacher", "member": seed}
    return cfg


def val_loss(run_dirs: list[str], store) -> tuple[list[float], list[float]]:
    r = evaluate_ensemble([Member.of_run(d) for d in run_dirs], store.split("val"), store.token_bytes(), 128, 16)
    return r["member_loss"], r["prefix_loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--results")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", default="1,4,16", help="generated tokens as multiples of the budget")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--fracs", default="0.75,0.9")
    ap.add_argument("--forms-at", type=int, default=4)
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--streams", type=int, default=128)
    ap.add_argument("--bench-json", default=str(Path(__file__).parent / "results" / "bench_cpu_small" / "bench.json"))
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.perf_counter()
    executor = make_executor("local", args.workers, threads=1)
    budget = stores(out / "stores")
    tokens = budget.split_tokens("train")
    jobs = [Job(teacher_config(budget, k), out / "teachers" / f"m{k}") for k in range(args.members)]
    train_all(jobs, executor, args.results)
    teachers = [str(j.run_dir) for j in jobs]
    members, prefix = val_loss(teachers, budget)
    print(f"teachers: members {', '.join(f'{x:.4f}' for x in members)}; ensemble prefixes "
          f"{', '.join(f'{x:.4f}' for x in prefix)}  ({time.perf_counter() - t0:.0f} s)")
    bench = json.loads(Path(args.bench_json).read_text())
    print(f"bench.json for comparison: members {bench['ensemble']['member_val_loss']}, "
          f"ensemble {bench['ensemble']['prefix_val_loss'][-1]:.4f}")
    ref = sorted((r["train_tokens"], r["val_loss"]) for r in bench["reference"])
    base = teacher_config(budget, 100)  # students: the teachers' config, seeds no teacher used
    base.tags = {}
    sizes = [int(s) for s in args.sizes.split(",")]
    fracs = tuple(float(f) for f in args.fracs.split(","))
    sampling = Sampling(1.0)
    rows = []

    def add(name: str, spec: SynthSpec, fracs: tuple, seeds: tuple, mult: int, kd: dict | None = None) -> dict:
        folder = out / name.removesuffix("+kd")  # the logit-distilled students share their synthetic store
        r = synthetic_students(base, teachers, folder, spec, fracs, seeds, kd=kd, executor=executor,
                               results=args.results)
        for s in r["students"]:
            rows.append({"name": name, "mode": spec.mode + ("+kd" if kd else ""), "multiple": mult, **s})
        print(f"{name}: share {r['frac']:g}; " + ", ".join(f"f{s['frac']:g}/s{s['seed']}: {s['val_loss']:.4f}"
                                                          for s in r["students"]) +
              f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
        return r

    seeds = tuple(100 + k for k in range(args.seeds))
    at = args.forms_at
    first = add(f"uncond-x{at}", SynthSpec(at * tokens, streams=args.streams, sampling=sampling), fracs, seeds, at)
    frac = first["frac"]
    add(f"uncond-x{at}+kd", SynthSpec(at * tokens, streams=args.streams, sampling=sampling), (frac,), seeds[:1], at,
        kd={"alpha": 0.5, "temperature": 1.0})
    for m in sizes:
        if m != at:
            add(f"uncond-x{m}", SynthSpec(m * tokens, streams=args.streams, sampling=sampling), (frac,), seeds[:1], m)
    for mode in ("conditioned", "megadoc"):
        spec = SynthSpec(at * tokens, mode, prefix=32, generations=4, streams=args.streams, sampling=sampling)
        add(f"{mode}-x{at}", spec, (frac,), seeds[:1], at)
    gain = members[0] - prefix[-1]
    for r in rows:
        r["gain_share"] = (members[0] - r["val_loss"]) / gain
        e = fit_efficiency([t for t, _ in ref], [v for _, v in ref], r["val_loss"], tokens, n_boot=1000)
        est = e.estimates["efficiency"]
        r["efficiency"] = {"value": est.value, "low": est.low, "high": est.high}
    chosen = [r for r in rows if r["name"] == f"uncond-x{at}" and r["frac"] == frac]
    spread = statistics.stdev([r["val_loss"] for r in chosen]) if len(chosen) > 1 else float("nan")
    if len(chosen) > 1:  # the students of the seeds as an ensemble
        _, ens = val_loss([r["run_dir"] for r in chosen], budget)
        print(f"ensemble of the {len(chosen)} x{at} students: {', '.join(f'{x:.4f}' for x in ens)}")
    else:
        ens = []
    print("\n| students on | mode | share | seed | select | val | gain share | efficiency [95%] |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        e = r["efficiency"]
        print(f"| {r['multiple']}x | {r['mode']} | {r['frac']:g} | {r['seed']} | {r['select_loss']:.4f} | "
              f"{r['val_loss']:.4f} | {r['gain_share']:.0%} | {e['value']:.2f}x [{e['low']:.2f}, {e['high']:.2f}] |")
    print(f"\nseed spread (sd) of the x{at} students: {spread:.4f}; one teacher {members[0]:.4f}, the {len(teachers)}-"
          f"ensemble {prefix[-1]:.4f}; {KIM_ENSEMBLE_STUDENT}; {MEGADOCS}")
    result = {"teachers": teachers, "teacher_val": members, "ensemble_prefix_val": prefix, "students": rows,
              "student_ensemble_prefix_val": ens, "reference": ref, "budget_tokens": tokens,
              "wall_seconds": time.perf_counter() - t0}
    (out / "synth_students.json").write_text(json.dumps(result, indent=1, default=float))
    np.set_printoptions(precision=4)


if __name__ == "__main__":
    main()
