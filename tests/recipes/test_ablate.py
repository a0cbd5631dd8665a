"""`scarce ablate`: changes as paired val differences and data multiples, with intervals over windows and seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from scarce.cli.main import main
from scarce.config import slowrun_overrides
from scarce.data.prepare import derive_store
from scarce.errors import UserError
from scarce.recipes import run_recipe
from scarce.recipes.ablate import Change, Draws, data_multiple, parse_change, plan


def test_changes_parse_fields_and_stacks():
    assert parse_change("wide:model.mlp_ratio=6,optim.lr=0.001") == Change("wide", {"model.mlp_ratio": 6,
                                                                                  "optim.lr": 0.001})
    assert parse_change("rec:@slowrun").fields == slowrun_overrides(True)
    for bad, message in (("nocolon", "NAME:FIELD"), ("x:@nope", "unknown stack"), ("baseline:model.depth=2", "reserved"),
                         ("x:model.depth", "FIELD=VALUE")):
        with pytest.raises(UserError, match=message):
            parse_change(bad)


def test_plan_adds_removes_and_trains_equal_configs_once():
    a, b = Change("a", {"model.mlp": "swiglu"}), Change("b", {"optim.lr": 1e-3})
    configs, comps = plan([a, b], "both")
    assert configs == {"baseline": {}, "a": a.fields, "b": b.fields, "stack": {**a.fields, **b.fields}}
    # stack without a is b alone: trained once, under b's name
    assert {(c["name"], c["kind"], c["base"], c["variant"]) for c in comps} == {
        ("a", "add", "baseline", "a"), ("b", "add", "baseline", "b"), ("stack", "stack", "baseline", "stack"),
        ("a", "remove", "b", "stack"), ("b", "remove", "a", "stack")}
    configs, comps = plan([a], "add")
    assert list(configs) == ["baseline", "a"] and len(comps) == 1
    with pytest.raises(UserError, match="cannot be stacked"):
        plan([a, Change("c", {"model.mlp": "relu2"})], "add")
    configs, comps = plan([a, Change("c", {"model.mlp": "relu2"})], "add", stack=False)  # alone only: fine
    assert list(configs) == ["baseline", "a", "c"] and [c["kind"] for c in comps] == ["add", "add"]
    with pytest.raises(UserError, match="cannot be ablated"):
        plan([Change("s", {"train.seed": 3})], "add")


def test_data_multiple_is_the_inverted_law():
    E, A, alpha = 2.0, 30.0, 0.4
    loss = lambda d: E + A * d ** -alpha
    assert math.isclose(data_multiple(loss(1e5), loss(3e5), E, A, alpha), 3.0)
    assert math.isclose(data_multiple(3.0, 2.5, E, A, alpha), (1.0 / 0.5) ** (1 / alpha))
    assert data_multiple(3.0, 1.9, E, A, alpha) == math.inf  # below the asymptote: no data is enough
    assert math.isnan(data_multiple(1.9, 1.8, E, A, alpha))


def _draws(spread: float, seeds: int = 3, n_boot: int = 400) -> dict:
    rng = np.random.default_rng(0)
    tpw, n = 32, 240
    base = rng.normal(3.0 * tpw, 4.0, (seeds, n))
    shift = np.array([-0.05 + spread * z for z in np.linspace(-1, 1, seeds)])  # the change's gain per seed
    variant = base + shift[:, None] * tpw + rng.normal(0, 1.0, (seeds, n))
    windows = {"baseline": base, "v": variant}
    losses = {k: w.sum(1) / (n * tpw) for k, w in windows.items()}
    d = Draws(windows, losses, tpw, n_boot)
    value, draws, noise = d.difference("baseline", "v")
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {"value": value, "low": lo, "high": hi, "noise": noise}


def test_the_difference_interval_widens_with_the_seeds_spread():
    tight, wide = _draws(0.001), _draws(0.05)
    assert math.isclose(tight["value"], wide["value"], abs_tol=1e-9)  # the same mean gain
    assert tight["low"] <= tight["value"] <= tight["high"] and wide["low"] <= wide["value"] <= wide["high"]
    assert (wide["high"] - wide["low"]) > 5 * (tight["high"] - tight["low"])
    assert wide["noise"].df == 2
    one = _draws(0.05, seeds=1)
    assert one["noise"].df == 0  # one seed: no seed noise measured, the interval is the windows'


def test_the_difference_interval_covers_a_known_gain_over_seeds_and_val_text():
    """Synthetic runs with a known expected difference (benchmarks/ablate_coverage.py): the 95% interval holds it
    about 95% of the time with 3 seeds of real seed noise."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "ablate_coverage.py"
    spec = importlib.util.spec_from_file_location("ablate_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cov, _ = module.coverage(seeds=3, seed_sd=0.01, trials=120, n_boot=200)
    assert 0.88 <= cov <= 1.0


@pytest.fixture
def sized_stores(tiny_store, tmp_path):
    """The tiny store's train cut to 1,500 and 3,000 tokens: the budget and a larger size, one val split."""
    return [derive_store(tiny_store, tmp_path / f"train-{n}", n) for n in (1500, 3000)]


def test_ablate_trains_pairs_and_reports_multiples(make_context, sized_stores, tiny_store, tmp_path, capsys):
    ctx = make_context()
    small, mid = sized_stores
    args = dict(overrides={**ctx.overrides, "model.depth": 1, "train.epochs": 2}, execution=ctx.execution,
                log=lambda *a: None, changes=["wd:optim.weight_decay=0.8"], seeds=2,
                reference_data=[str(mid.path), str(tiny_store.path)], n_boot=50)
    out = run_recipe("ablate", str(small.path), ctx.out, **args)
    (c,) = out["comparisons"]
    assert c["name"] == "wd" and c["seeds"] == 2 and c["kind"] == "add"
    base = [r["val_loss"] for r in out["configs"]["baseline"]["runs"]]
    var = [r["val_loss"] for r in out["configs"]["wd"]["runs"]]
    assert math.isclose(c["delta"]["value"], np.mean(var) - np.mean(base), rel_tol=1e-9)
    ref = out["reference"]["points"]
    assert [p["train_tokens"] for p in ref] == [1500, 3000, 6000]
    assert ref[0]["run_id"] == out["configs"]["baseline"]["runs"][0]["run_id"]  # the baseline is the 1x point
    law = {k: out["reference"][k]["value"] for k in ("E", "A", "alpha")}
    expected = data_multiple(np.mean(base), np.mean(var), law["E"], law["A"], law["alpha"])
    assert c["multiple"]["value"] is None and math.isnan(expected) or math.isclose(c["multiple"]["value"], expected)
    assert c["multiple"]["identified"] == (not out["reference"]["at_bound"])
    emp = c["multiple_empirical"]  # read off the reference's points without a law
    assert emp["value"] > 0 and isinstance(emp["extrapolated"], bool)
    assert c["flops_ratio"] == pytest.approx(1.0)  # weight decay costs no FLOPs
    assert json.loads((Path(ctx.out) / "recipe.json").read_text())["recipe"] == "ablate"
    assert (Path(ctx.out) / "ablate.csv").read_text().startswith("change,kind")
    again = run_recipe("ablate", str(small.path), ctx.out, **args)
    assert again["configs"] == out["configs"]  # done runs are reused, not trained again


def test_ablate_command_writes_its_report(make_context, sized_stores, tiny_store, tmp_path, capsys):
    ctx = make_context()
    small, mid = sized_stores
    sets = [f"--set={k}={v}" for k, v in {**ctx.overrides, "model.depth": 1, "train.epochs": 1}.items()]
    argv = ["ablate", "--data", str(small.path), "--out", str(tmp_path / "abl"), "--results", ctx.results,
            "--workers", "1", "--seeds", "1", "--boot", "20", "--change", "wd:optim.weight_decay=0.8",
            "--reference-data", str(mid.path), str(tiny_store.path), *sets]
    assert main(argv) == 0
    text = (tmp_path / "abl" / "report.md").read_text()
    assert "| wd | add | 1 |" in text and "one seed per config" in text
    assert (tmp_path / "abl" / "plots" / "ablation.png").read_bytes()[:4] == b"\x89PNG"


def test_ablate_refuses_a_reference_on_another_val_split(make_context, sized_stores, stdlib_store, capsys):
    ctx = make_context()
    with pytest.raises(UserError, match="another val split"):
        run_recipe("ablate", str(sized_stores[0].path), ctx.out, execution=ctx.execution, log=lambda *a: None,
                   changes=["wd:optim.weight_decay=0.8"], reference_data=[str(stdlib_store.path)])
