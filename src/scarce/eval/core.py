"""CORE: DCLM's aggregate of downstream accuracy, the number nanochat judges its models by.

Each task's accuracy is centered on its random baseline, (acc - random) / (1 - random), so 0 is
guessing and 1 is perfect whatever the number of choices; CORE is the mean over DCLM's 22 core tasks.
Here it is the mean over the core tasks that were evaluated, labelled partial (with the tasks it
covers and those it lacks) when fewer than all 22 are present: a partial CORE is not comparable with
a full one.

Scores come from lm-evaluation-harness's versions of the tasks, which differ from DCLM's: zero-shot by
default where DCLM uses up to 10 shots (lm-eval's hellaswag fills DCLM's 10-shot hellaswag), and lm-eval's
`acc_norm` (normalised by the choice's length in characters) where DCLM compares the mean log-loss per
token. So CORE here ranks models; it does not reproduce published numbers.
"""

from __future__ import annotations

from scarce.eval.nextline import RANDOM_BASELINE as NEXTLINE_BASELINE
from scarce.eval.nextline import TASK as NEXTLINE

# Random baselines of DCLM's 22 core tasks ("low_variance_datasets"), as fractions. Source: DCLM's
# eval/eval_meta_data.csv ("Random baseline", in percent) and eval/additional_aggregation.json at
# github.com/mlfoundations/dclm commit 6204236 (Sept 2025, "v2", the corrected baselines). The earlier
# eval_meta_data_v1.csv differs on three of them: commonsense_qa 0.20, agi_eval_lsat_ar 0.20,
# bigbench_language_identification 0.091.
RANDOM_BASELINES = {
    "hellaswag_zeroshot": 0.25, "jeopardy": 0.0, "bigbench_qa_wikidata": 0.0, "arc_easy": 0.25,
    "arc_challenge": 0.25, "copa": 0.50, "commonsense_qa": 0.403, "piqa": 0.50, "openbook_qa": 0.25,
    "lambada_openai": 0.0, "hellaswag": 0.25, "winograd": 0.50, "winogrande": 0.50,
    "bigbench_dyck_languages": 0.0, "agi_eval_lsat_ar": 0.25, "bigbench_cs_algorithms": 0.0,
    "bigbench_operators": 0.0, "bigbench_repeat_copy_logic": 0.0, "squad": 0.0, "coqa": 0.0, "boolq": 0.62,
    "bigbench_language_identification": 0.25,
}
CORE_TASKS = tuple(RANDOM_BASELINES)

LM_EVAL_NAMES = {"openbookqa": "openbook_qa", "wsc273": "winograd", "agieval_lsat_ar": "agi_eval_lsat_ar"}
"""lm-eval task names spelled differently from DCLM's core task of the same data and choices. A task counts
toward CORE under its DCLM name (lm-eval's arc_easy, arc_challenge, piqa, copa, commonsense_qa, hellaswag,
lambada_openai, winogrande and boolq share it; a task YAML of your own can take any of the 22) and only with an
accuracy: lm-eval's generative versions (coqa, squad, ...) report exact match and F1, which do not count."""

OTHER_BASELINES = {NEXTLINE: NEXTLINE_BASELINE}
"""Tasks outside CORE whose random baseline is known: their centered accuracy is reported, not averaged."""


def centered(accuracy: float, random: float) -> float:
    """(acc - random) / (1 - random): 0 at chance, 1 when every answer is right."""
    if not 0 <= random < 1:
        raise ValueError(f"random baseline must be in [0, 1), got {random}")
    return (accuracy - random) / (1 - random)


def accuracy_metric(metrics: dict) -> str | None:
    """The accuracy CORE takes from a task's metrics: acc_norm where lm-eval reports it, else acc."""
    return next((m for m in ("acc_norm", "acc") if isinstance(metrics.get(m), (int, float))), None)


def baseline(task: str) -> tuple[str | None, float | None]:
    """(DCLM core task or None, random baseline or None) of an lm-eval task name."""
    name = LM_EVAL_NAMES.get(task, task)
    if name in RANDOM_BASELINES:
        return name, RANDOM_BASELINES[name]
    return None, OTHER_BASELINES.get(task)


def centered_accuracies(results: dict[str, dict]) -> dict[str, dict]:
    """Per task with a known random baseline: the metric used, its value, the baseline, the centered value
    and the core task it stands for (None outside CORE)."""
    out = {}
    for task, metrics in results.items():
        core_task, random = baseline(task)
        metric = accuracy_metric(metrics)
        if random is None or metric is None:
            continue
        out[task] = {"core_task": core_task, "metric": metric, "accuracy": metrics[metric], "random": random,
                     "centered": centered(metrics[metric], random)}
    return out


def core(results: dict[str, dict]) -> dict:
    """CORE over the core tasks among `results` ({lm-eval task: {metric: value}}): the mean centered
    accuracy, whether it is partial, the core tasks it covers and those missing. `score` is None when no
    core task was evaluated."""
    per = {c["core_task"]: {"task": t, **c} for t, c in centered_accuracies(results).items() if c["core_task"]}
    values = [per[name]["centered"] for name in CORE_TASKS if name in per]
    return {
        "score": sum(values) / len(values) if values else None,
        "partial": len(values) < len(CORE_TASKS),
        "covers": [name for name in CORE_TASKS if name in per],
        "missing": [name for name in CORE_TASKS if name not in per],
        "tasks": {name: {k: v for k, v in per[name].items() if k != "core_task"} for name in CORE_TASKS if name in per},
        "baselines": "DCLM eval_meta_data.csv v2 (mlfoundations/dclm 6204236)",
    }


def describe(summary: dict) -> str:
    """One line: the CORE score and what it covers."""
    if summary["score"] is None:
        return "CORE: no core task evaluated"
    n, total = len(summary["covers"]), len(CORE_TASKS)
    if not summary["partial"]:
        return f"CORE {summary['score']:.4f} (all {total} tasks)"
    return f"CORE {summary['score']:.4f} (partial: {n} of {total} tasks: {', '.join(summary['covers'])})"
