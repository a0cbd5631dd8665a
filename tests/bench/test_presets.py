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


def test_whole_presets_are_the_presets_of_before_pieces(tmp_path):
    """cpu-small, cpu-full and cpu-small-synth train on pieces; their `-whole` variants are what those names were
    (whole documents), so the results measured before are reproduced by name: same stores, same run configs."""
    from dataclasses import replace

    from scarce.bench.presets import PIECE_BYTES
    from scarce.bench.stages import standard_points

    for name in ("cpu-small", "cpu-full", "cpu-small-synth"):
        pieces, whole = BENCH_PRESETS[name], BENCH_PRESETS[f"{name}-whole"]
        assert pieces.piece_bytes == PIECE_BYTES and whole.piece_bytes == 0
        assert replace(whole, name=name, piece_bytes=PIECE_BYTES) == pieces
    for name in ("cpu-small", "cpu-full"):
        assert replace(BENCH_PRESETS[f"{name}-wsd"], name=f"{name}-whole") == BENCH_PRESETS[f"{name}-whole"]
    stores = {m: SimpleNamespace(path=tmp_path / f"train-{m}") for m in (1, 2, 4, 8)}
    assert standard_points(BENCH_PRESETS["cpu-small-whole"], stores) == standard_points(BENCH_PRESETS["cpu-small"], stores)
    assert all(p.piece_bytes == 0 for n, p in BENCH_PRESETS.items()
               if n not in ("cpu-small", "cpu-full", "cpu-small-synth", "cpu-full-population"))


def test_cpu_full_population_is_cpu_full_past_the_ensemble(tmp_path):
    """8 members and the population stage under the record's primitives, without the synthetic stage; its
    trajectories are valid runs (cyclic, chain from cycle 2, perturbation) at a chosen setting of cpu-full's family."""
    from dataclasses import replace

    from scarce.bench.presets import RECORD_POPULATION
    from scarce.bench.stage.population import population_points
    from scarce.recipes.common import point_config

    full, pop = BENCH_PRESETS["cpu-full"], BENCH_PRESETS["cpu-full-population"]
    assert replace(full, name=pop.name, members=8, population=2, population_overrides=RECORD_POPULATION, synthetic=(),
                   synthetic_fracs=(0.9,), synthetic_members=1) == pop
    chosen = {"point": {"model.depth": 4, "optim.lr": 3e-3, "optim.weight_decay": 3.2, "train.epochs": 16.0}}
    members = [SimpleNamespace(config=SimpleNamespace(train=SimpleNamespace(epochs=16.0)))] * pop.members
    points = population_points(pop, chosen, members)
    assert len(points) == 2 and sum(p["train.epochs"] for p in points) == 8 * 16
    for p in points:
        cfg = point_config(p, data=str(tmp_path), overrides=pop.overrides)
        assert cfg.optim.schedule == "cyclic" and cfg.objective.kind == "chain" and cfg.objective.chain_from == 2
        assert cfg.optim.perturb == 0.25 and cfg.optim.wd_schedule == "anti" and cfg.train.epochs == 64
