"""`scarce bench --samples S`: the bench on S samples of its corpus (`prepare --seed 0..S-1`) and one headline
whose interval covers the sample (`scarce.scaling.samples.combine_samples`: random effects, Hartung-Knapp).

Each sample is a whole bench in OUT/sample-<seed> (its own bench.json and report); OUT/samples.json and
OUT/report.{md,html} hold the combination: every recipe's multiples over the samples with the interval of their
mean, the interval one more sample would read, the spread between samples, and each finding as reproduced on
every sample, on none, or with the samples disagreeing."""

from __future__ import annotations

import dataclasses
import math
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from pathlib import Path

from scarce import atomic
from scarce.bench.common import Log
from scarce.bench.pipeline import bench
from scarce.bench.presets import DEFAULT_RECIPE
from scarce.bench.report import verdict_of
from scarce.bench.result import BenchResult
from scarce.errors import UserError
from scarce.report.report import Doc, fmt, write_doc
from scarce.runs.executors import Execution, ProcessExecutor, cpu_count, visible_gpus
from scarce.scaling.samples import combine_samples, within_sd_of_interval

KINDS = ("parametric", "empirical")


MAX_SAMPLES = 64
"""The most samples one `bench --samples` takes: an interval over the samples is settled long before, and every
sample is a whole bench."""


def bench_samples(out: str | Path, preset: str = "cpu-tiny", samples: int = 3, recipe: str = DEFAULT_RECIPE,
                  execution: Execution | None = None, log: Log = print) -> dict:
    """Run the bench on samples 0..S-1 of the preset's corpus and combine them; returns what samples.json holds."""
    execution = execution or Execution()
    if samples < 2:
        raise UserError(f"--samples needs 2 or more samples of the corpus to combine, got {samples}")
    if samples > MAX_SAMPLES:  # each is a whole bench: a thread, a store and a results root of its own
        raise UserError(f"--samples {samples:,} is more than the {MAX_SAMPLES} samples a bench combines (each "
                        "sample is a whole bench, trained at the same time as the others); give fewer")
    out = Path(out)
    n = execution.workers or cpu_count()
    if execution.executor != "local" or visible_gpus() or n < 2:  # one sample after another, each planning its workers
        per = []
        for seed in range(samples):
            log(f"bench sample {seed + 1} of {samples} (data seed {seed})")
            per.append(bench(out / f"sample-{seed}", preset, seed, recipe, execution, log))
    else:
        per = _at_once(out, preset, samples, recipe, dataclasses.replace(execution, workers=n), log)
    combined = combine_results(per)
    combined["report"] = str(write_samples_report(out, combined))
    atomic.write_json(out / "samples.json", combined)
    return combined


def _at_once(out: Path, preset: str, samples: int, recipe: str, execution: Execution,
             log: Log) -> list[BenchResult]:
    """The samples' benches at the same time, in threads sharing one pool of `workers` processes (a run store
    and results root each, as one after another): while one sample fits its laws or evaluates, or waits for
    its stage's last run, the others' runs use the cores. Same runs, same numbers; less idle time."""
    workers = execution.workers
    log(f"bench: {samples} samples at once on {workers} shared worker(s) (data seeds 0..{samples - 1})")
    live = Live(samples)

    def one(seed: int) -> BenchResult:
        say = lambda line: log(f"[sample {seed}] {line}")
        try:
            shared = dataclasses.replace(execution, pool=pool, threads=live.threads)
            return bench(out / f"sample-{seed}", preset, seed, recipe, shared, say)
        finally:
            live.done()

    # Daemon threads: an interrupted or failed bench does not wait for another sample's fit or evaluation to end
    # (whatever it was writing goes to a temporary name first).
    with ProcessExecutor(workers, threads=1) as pool:
        futures = [Future() for _ in range(samples)]
        for seed, future in enumerate(futures):
            threading.Thread(target=_settle, args=(future, one, seed), name=f"bench-sample-{seed}", daemon=True).start()
        wait(futures, return_when=FIRST_EXCEPTION)  # a failed sample stops the others' runs at once
        return [f.result() for f in futures]


class Live:
    """The samples still running, and the torch threads a sample's own evaluations take: one while another
    sample is still running (its runs keep the pool's one-thread workers on every core; with two threads the
    evaluations and the runs beside them slowed each other: benchmarks/results/bench_cpu_small_samples.md),
    every core once a sample is the last (the pool is then idle while it evaluates)."""

    def __init__(self, samples: int, cores: int | None = None):
        self.left, self.cores, self._lock = samples, cores or cpu_count(), threading.Lock()

    def done(self) -> None:
        with self._lock:
            self.left -= 1

    def threads(self) -> int:
        return self.cores if self.left <= 1 else 1


def _settle(future: Future, fn, *args) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as e:  # (in a thread: handed to the waiting caller)
        future.set_exception(e)


def combine_results(per: list[BenchResult]) -> dict:
    """Every recipe's multiples and every finding over the samples' bench results."""
    names = [n for n in per[0].recipes if all(n in r.recipes for r in per)]
    recipes = {name: {kind: _combined([r.recipes[name]["efficiency"].get(kind) for r in per]) for kind in KINDS}
               for name in names}
    default = per[0].default_recipe
    return {"preset": per[0].preset, "samples": len(per), "data_seeds": [r.data_seed for r in per],
            "default_recipe": default, "headline": recipes.get(default),
            "per_sample": [{"data_seed": r.data_seed, "out": r.out, "default_recipe": r.default_recipe,
                            "efficiency": {k: _estimate(r.recipes[default]["efficiency"].get(k)) for k in KINDS}}
                           for r in per],
            "recipes": recipes, "findings": _findings(per)}


def _finite(e: dict | None) -> bool:
    return bool(e) and all(isinstance(e.get(k), (int, float)) and math.isfinite(e[k]) and e[k] > 0
                           for k in ("value", "low", "high"))


def _estimate(e: dict | None) -> dict | None:
    return None if not e else {k: e.get(k) for k in ("value", "low", "high")}


def _combined(estimates: list[dict | None]) -> dict:
    """The samples' multiples combined; not combined (and said why) unless every sample has a finite interval."""
    if not all(_finite(e) for e in estimates):
        return {"value": None, "note": "not combined: a sample has no finite multiple and interval (unreachable "
                                       "or extrapolated past the reference law)"}
    values = [e["value"] for e in estimates]
    sds = [within_sd_of_interval(e["low"], e["high"]) for e in estimates]
    return combine_samples(values, within_sd=sds).to_json_dict()


def _findings(per: list[BenchResult]) -> list[dict]:
    """Each finding over the samples. One that holds when its interval lies above a threshold (`above`) is judged
    on the samples' combined interval (random effects on its own scale); the others by the samples' verdicts:
    reproduced on every sample, or the verdicts each sample read."""
    out = []
    for f in per[0].findings:
        mine = [next((g for g in r.findings if g["id"] == f["id"]), {}) for r in per]
        verdicts = [verdict_of(g) if g else "not run" for g in mine]
        combined = _combined_finding(mine)
        if combined is not None:
            t = mine[0]["above"]
            verdict = ("reproduced" if combined["low"] > t else "not reproduced" if combined["high"] < t
                       else "not shown")
            status = (f"{verdict} on the combined interval {fmt(combined['value'])} [{fmt(combined['low'])}, "
                      f"{fmt(combined['high'])}]" + ("" if len(set(verdicts)) == 1 else
                                                     f" (per sample: {', '.join(verdicts)})"))
        elif len(set(verdicts)) == 1:
            verdict = verdicts[0]
            status = f"{verdict} on every sample"
        else:
            verdict = "not shown"
            status = f"samples differ: {', '.join(verdicts)}"
        out.append({"id": f["id"], "name": f.get("name"), "verdict": verdict, "status": status,
                    "verdicts": verdicts, "reproduced": [g.get("reproduced") for g in mine],
                    "values": [g.get("value") for g in mine], "combined": combined})
    return out


def _combined_finding(mine: list[dict]) -> dict | None:
    """A threshold finding's samples combined, when every sample measured it with a finite interval."""
    numbers = lambda g: all(isinstance(g.get(k), (int, float)) and math.isfinite(g[k]) for k in ("value", "low", "high"))
    if not all("above" in g and numbers(g) and g["above"] == mine[0]["above"] for g in mine):
        return None
    sds = [within_sd_of_interval(g["low"], g["high"], log=False) for g in mine]
    return combine_samples([g["value"] for g in mine], within_sd=sds, log=False).to_json_dict()


def write_samples_report(out: Path, combined: dict) -> Path:
    doc = Doc(f"scarce bench {combined['preset']} over {combined['samples']} samples of its corpus")
    head = combined["headline"] or {}
    default = combined["default_recipe"]
    for kind in KINDS:
        c = head.get(kind) or {}
        if c.get("value") is None:
            doc.p(f"**{default}**, {kind} multiple: {c.get('note', 'not measured')}.")
            continue
        doc.p(f"**{default}**, {kind} data-efficiency multiple over {combined['samples']} samples: "
              f"**{fmt(c['value'])}x [{fmt(c['low'])}, {fmt(c['high'])}]** (95%, covering the sample: random effects, "
              f"Hartung-Knapp); one more sample would read {_range(c)}; spread between samples "
              f"x{fmt(math.exp(c['tau']))} (tau {fmt(c['tau'])} in log units).")
        if combined["samples"] == 3 and c.get("prediction_low") is not None:
            doc.p("With 3 samples the range one more sample would read rests on a t with 1 degree of freedom: it "
                  "is wide because 3 samples say little about a fourth; 5 samples narrow it (t with 3).")
    doc.h2("Per sample")
    doc.table(["data seed", f"{default} parametric", f"{default} empirical", "report"],
              [[s["data_seed"], _interval(s["efficiency"]["parametric"]), _interval(s["efficiency"]["empirical"]),
                f"sample-{s['data_seed']}/report.md (.html)"] for s in combined["per_sample"]])
    doc.p("Each sample's own interval covers its val windows, its seed noise and its reference law's misfit "
          "(bench.json `intervals`), not the documents drawn; the combined interval above covers those too.")
    doc.h2("Every recipe")
    rows = []
    for name, kinds in combined["recipes"].items():
        for kind, c in kinds.items():
            rows.append([name, kind, *((fmt(c["value"]), fmt(c["low"]), fmt(c["high"]), _range(c), fmt(c["tau"]))
                                      if c.get("value") is not None else ("-",) * 5)])
    doc.table(["recipe", "multiple", "value", "low", "high", "one more sample", "tau"], rows)
    doc.h2("Findings")
    doc.table(["finding", "over the samples", "per sample"],
              [[f["name"] or f["id"], f["status"], ", ".join(f["verdicts"])] for f in combined["findings"]])
    return write_doc(out, doc)


def _interval(e: dict | None) -> str:
    return "-" if not _finite(e) else f"{fmt(e['value'])}x [{fmt(e['low'])}, {fmt(e['high'])}]"


def _range(c: dict) -> str:
    if c.get("prediction_low") is None:
        return "(needs 3 samples or more)"
    return f"[{fmt(c['prediction_low'])}, {fmt(c['prediction_high'])}]"
