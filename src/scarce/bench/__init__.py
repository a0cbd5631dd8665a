"""`scarce bench`: the published findings of data-scarce pretraining, measured on one fixed budget.

The pipeline, each step resumable through the run store (a run whose config hash is done is skipped):
1. the standard recipe (weight decay 0.1, no dropout): every model size on the fixed budget D at several
   epoch counts (does it overfit?), and the reference size at 1x, 2x, 4x, ... D with its epochs tuned on
   select at every size of data: the reference data-scaling law L(D) = E + A·D^(-alpha);
2. the regularized recipe: per size, certified coordinate descent over (LR, weight decay, epochs) on
   select, all sizes in lockstep; a power law in parameters with its asymptote;
3. ensembles of K seeds of each size's chosen setting (the largest size, or every size for the joint
   limit), every prefix k = 1..K evaluated on val; the K-scaling law and the two-step joint limit;
4. distillation at the largest size: the K-member ensemble into one student, self-distillation from
   one member, and chain distillation (member k learns from member k-1);
0. continued pretraining (a preset with `pretrain_corpus`, e.g. `cpu-cpt`): first a model is pretrained on
   another corpus (one tokenizer for both), and every run above starts from its weights: the standard CPT
   (usual weight decay, epochs tuned) is the reference and the recipes are regularized and ensemble CPT;
5. fits, data efficiency D_ref(L) / D (parametric and empirical) and the findings: each published
   finding checked and stated reproduced or not, with its number and 95% interval.

Only select chooses (epochs, settings); val is used only to report. Every run evaluates once, at its
end: the epoch count is the early stopping, as in the published recipes. Differences between models are
paired on the same val windows and get moving-block bootstrap intervals (`scarce.scaling.paired`).

The package: `presets` (the budgets), `stages` (run points, run through the run store), `stage` (the stages that
are one module each: run, results, findings and report section; `stage.STAGES` lists them), `evaluations`,
`results` (fits and efficiency), `findings`, `result` (bench.json), `pipeline` (the order of it all).
"""

from scarce.bench.pipeline import bench
from scarce.bench.presets import (
    BENCH_PRESETS,
    BENCH_RECIPES,
    CPU_FAMILY,
    DEFAULT_RECIPE,
    ONE_EVALUATION,
    BenchPreset,
    get_bench_preset,
)
from scarce.bench.result import BenchResult

__all__ = ["BENCH_PRESETS", "BENCH_RECIPES", "CPU_FAMILY", "DEFAULT_RECIPE", "ONE_EVALUATION", "BenchPreset",
           "BenchResult", "bench", "get_bench_preset"]
