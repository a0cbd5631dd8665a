"""The presets' arithmetic: gpu-mini fits the data a GPU machine has offline and sizes its models 10-100x the
CPU presets'; the probe that sets workers per GPU measures a preset's largest standard run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from scarce.bench import BENCH_PRESETS
from scarce.bench.pipeline import largest_standard
from scarce.model.gpt import GPT, param_counts


def _non_embedding(cfg) -> int:
    cfg.model.vocab_size = 512
    return param_counts(GPT(cfg.model))["non_embedding"]


def test_gpu_mini_fits_a_minimal_stdlib_and_scales_the_cpu_presets(tmp_path):
    mini, small = BENCH_PRESETS["gpu-mini"], BENCH_PRESETS["cpu-small"]
    needed = mini.budget_tokens * max(mini.multiples) + mini.select_tokens + mini.val_tokens
    assert needed <= 2_600_000  # the stdlib of a minimal Python image: ~3M tokens (gpu_check's store)
    assert 5 * small.budget_tokens <= mini.budget_tokens <= 100 * small.budget_tokens
    assert mini.distill and mini.joint and mini.members >= 4 and not mini.synthetic  # findings 1-6
    stores = {m: SimpleNamespace(path=tmp_path / f"train-{m}") for m in mini.multiples}
    big = largest_standard(mini, stores)
    small_big = largest_standard(small, {m: SimpleNamespace(path=tmp_path / f"s-{m}") for m in small.multiples})
    assert big.model.depth == max(mini.sizes) and big.train.compile is False
    assert Path(big.data) == (tmp_path / "train-1").resolve() and big.train.batch_size == 32
    ratio = _non_embedding(big) / _non_embedding(small_big)
    assert 10 <= ratio <= 100, ratio
