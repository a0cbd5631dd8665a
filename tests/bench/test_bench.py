"""`scarce bench` and `scarce report` end to end on a micro preset (a few seconds of training)."""

from __future__ import annotations

import csv
import json
import sysconfig
from pathlib import Path

import pytest

from scarce.bench import BENCH_PRESETS, BenchPreset
from scarce.bench.findings import VERDICTS
from scarce.bench.presets import POPULATION
from scarce.cli.main import main
from scarce.runs.store import RunStore

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPORT_FILES = ("bench.json", "report.md", "report.html", "tables/runs.csv", "tables/recipes.csv",
                "tables/reference.csv", "tables/recipe.csv", "tables/ensemble.csv", "tables/fits.csv",
                "tables/findings.csv", "tables/standard.csv", "tables/regularized.csv", "tables/joint.csv",
                "tables/distillation.csv", "tables/synthetic.csv", "tables/population.csv")
PLOTS = ("reference_law.png", "efficiency_parametric.png", "efficiency_empirical.png", "members.png", "k_scaling.png",
         "loss_vs_compute.png", "standard_epochs.png", "regularized_params.png", "joint.png", "synthetic.png")
MICRO_RUN = {"model.aspect_ratio": 16, "model.head_dim": 16, "model.seq_len": 32, "train.batch_size": 4,
             "train.log_every": 1000}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """~70 kB of stdlib source, one document per file."""
    root = tmp_path_factory.mktemp("corpus")
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:80]
    lines = [json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")[:900]}) for p in files]
    (root / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return f"files:{root}"


@pytest.fixture(scope="module")
def micro(corpus) -> BenchPreset:
    return BenchPreset("micro", budget_tokens=1200, multiples=(1, 2, 4), corpus=corpus, vocab_size=300,
                       select_tokens=600, val_tokens=600, tokenizer_bytes=0, heldout_window=200, overrides=MICRO_RUN,
                       sizes=(1, 2, 3), standard_epochs=(1, 2, 3), reference_epochs={2: (1, 2), 4: (1,)},
                       lrs=(3e-3,), weight_decays=(0.1, 0.8), epochs=(2, 3), max_rounds=1, members=3, joint=True,
                       distill=True, stack=True, n_boot=100, synthetic=(1, 2, 3), synthetic_fracs=(0.5, 0.9),
                       synthetic_members=2, population=2, population_cycle_epochs=1.0,
                       population_overrides={**POPULATION, "objective.kind": "chain", "objective.alpha": 0.45,
                                             "objective.temperature": 1.2, "optim.perturb": 0.1})


@pytest.fixture(scope="module")
def bench_run(micro, tmp_path_factory, capsys_module):
    root = tmp_path_factory.mktemp("bench")
    out, results = root / "out", root / "results"
    BENCH_PRESETS["micro"] = micro
    try:
        argv = ["bench", "--preset", "micro", "--out", str(out), "--results", str(results), "--workers", "1"]
        assert main(argv) == 0
        first = capsys_module()
        assert main(argv) == 0  # everything is done: the second call only refits and re-renders
        second = capsys_module()
    finally:
        del BENCH_PRESETS["micro"]
    return out, results, first, second


@pytest.fixture(scope="module")
def capsys_module():
    """Captured stdout between calls, for a module-scoped fixture (pytest's capsys is per test)."""
    import contextlib
    import io

    buf = io.StringIO()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(buf))

    def read() -> str:
        text = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return text

    yield read
    stack.close()


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_bench_writes_json_report_plots_and_tables(bench_run):
    out, _, first, _ = bench_run
    result = json.loads((out / "bench.json").read_text())
    assert {"standard", "regularized", "ensemble-k3"} <= set(result["recipes"])
    for name, r in result["recipes"].items():
        assert r["val_loss"] > 0 and (name == "joint-limit" or r["val_bpb"] > 0)
    assert set(result["efficiency"]) == {"parametric", "empirical"}
    for e in result["efficiency"].values():
        assert {"value", "low", "high"} <= set(e)
    assert result["wall_seconds"] > 0 and result["run_seconds"] > 0
    for name in ("report.md", "report.html"):
        assert (out / name).stat().st_size > 1000
    pngs = sorted((out / "plots").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"reference_law.png", "loss_vs_compute.png", "members.png", "k_scaling.png"} <= names
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 5000, png
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)
    md = (out / "report.md").read_text()
    assert all(f"plots/{n}" in md for n in names)
    assert "ensemble-k3 *" in first and first.strip().endswith("report.md)")
    assert [f["id"] for f in result["findings"]] == ["1", "2", "3", "4", "5a", "5b", "5c", "6", "5a-seq", "5b-seq", "7",
                                                    "8"]
    for f in result["findings"]:
        assert f["verdict"] in VERDICTS and f["detail"], f
        assert f["reproduced"] == {"reproduced": True, "not reproduced": False}.get(f["verdict"]), f
        assert f["id"] in first
        if f["id"] in ("1", "5a", "5b", "5c", "5a-seq", "5b-seq"):  # paired differences of its runs
            assert f["verdict"] != "not run" and f["value"] is not None, f
    # what the intervals cover, and every fit at a bound among the warnings
    assert "val windows" in result["intervals"]["covers"] and result["intervals"]["leaves_out"]
    assert result["intervals"]["seed_noise"]["df"] >= 2  # the ensemble's members repeat one setting
    for name, fit in result["fits"].items():
        if not name.startswith("efficiency_") and any("hit a bound" in w for w in fit.get("warnings", [])):
            assert any(w.startswith(f"fit {name}:") for w in result["warnings"]), name
    for w in result["warnings"]:
        assert f"warning: {w}" in first
    # finding 2: each size against the next smaller, paired on the val windows, matches their val losses
    steps = result["findings"][1]["size_steps"]
    reg = {r["depth"]: r["val_loss"] for r in result["regularized"]}
    assert [(s["from"], s["to"]) for s in steps] == list(zip(sorted(reg), sorted(reg)[1:]))
    for s in steps:
        assert s["value"] == pytest.approx(reg[s["to"]] - reg[s["from"]], abs=1e-4)
        assert s["low"] <= s["value"] <= s["high"]
    assert "each size minus the next smaller, paired" in result["findings"][1]["detail"]
    hygiene = result["hygiene"]
    assert result["smoke"] is False and hygiene["select_val_gap_max"] >= 0
    # the standard recipe's best against the regularized recipe's, per size, paired on the val windows
    pairs = hygiene["paired_differences"]
    assert [d["depth"] for d in pairs] == [r["depth"] for r in result["regularized"]]
    for d, reg in zip(pairs, result["regularized"]):
        best_std = min(r["val_loss"] for r in result["standard"] if r["depth"] == d["depth"])
        assert d["value"] == pytest.approx(best_std - reg["val_loss"], abs=1e-4)
        assert d["se"] > 0 and d["low"] <= d["value"] <= d["high"]
    assert hygiene["paired_difference_se"] == max(d["se"] for d in pairs) and hygiene["overfit_difference_se"] >= 0
    down = result["downstream"]
    assert down["task"] == "scarce_nextline" and down["random"] == 0.25 and down["items"] > 0
    assert set(down["recipes"]) == {"standard", "regularized", "ensemble-k3"}
    for a in [*down["recipes"].values(), *({"value": r["accuracy"]} for r in down["runs"])]:
        assert 0 <= a.get("low", 0) <= a["value"] <= a.get("high", 1) <= 1
    assert len(down["runs"]) >= 4 and -1 <= down["correlation"]["rho"] <= 1
    assert "scarce_nextline accuracy" in (out / "report.md").read_text()
    assert result["data_seed"] == 0 and "**The sample.** A fixed draw of documents" in md


def test_bench_joint_ensembles_hold_each_sizes_own_members(bench_run):
    """With the joint limit every size's members train in one batch of runs; each size's ensemble is still its
    chosen regularized run and members of its own depth and setting, seeds all different."""
    from scarce.rundir import read_config

    out = bench_run[0]
    for depth in (1, 2, 3):
        members = json.loads((out / "ensembles" / f"d{depth}" / "ensemble.json").read_text())["members"]
        configs = [read_config(m["run_dir"]) for m in members]
        assert len(configs) == 3 and "bench-regularized" in members[0]["run_dir"]
        assert all("bench-ensemble" in m["run_dir"] for m in members[1:])
        assert {c.model.depth for c in configs} == {depth}
        assert len({(c.optim.lr, c.optim.weight_decay, c.train.epochs) for c in configs}) == 1
        assert len({c.train.seed for c in configs}) == 3


def test_bench_synthetic_stage_is_the_recipe(bench_run):
    """The synthetic stage's students are what `scarce.recipes.synthetic` makes of the ensemble's chosen member:
    same config, teachers the ensemble, generated sizes as the preset says, the share chosen on select."""
    from scarce.config import RunConfig
    from scarce.data.store import open_store
    from scarce.recipes.synthetic import student_config
    from scarce.rundir import read_config

    out, results, _, _ = bench_run
    result = json.loads((out / "bench.json").read_text())
    syn = result["synthetic"]
    assert sorted(syn["students"], key=int) == ["1", "2", "3"] and len(syn["students"]["3"]) == 2
    assert syn["frac"] == min(syn["tuning"], key=lambda t: t["select_loss"])["frac"]
    members = [d for d in result["run_ids"]]
    ens_dirs = {str(Path(m["run_dir"]).resolve()) for m in
                json.loads((out / "ensembles" / "d3" / "ensemble.json").read_text())["members"]}
    student_dirs = sorted((out / "runs" / "synthetic").glob("x*/f*-s*"))
    assert len(student_dirs) == 1 + 2 + 1 + 1  # two shares at 2x (the middle), one at 1x, two seeds at 3x
    for d in student_dirs:
        cfg = read_config(d)
        store = open_store(cfg.mix.store)
        assert set(store.manifest["synthetic"]["teachers"]) == ens_dirs
        member = read_config(sorted(ens_dirs)[0])
        base = RunConfig.from_dict(read_config(next(iter(ens_dirs))).to_dict())
        base = RunConfig.from_dict({**base.to_dict(), "train": {**base.to_dict()["train"], "seed": 0}})
        base.tags = {"stage": "synthetic"}
        want = student_config(base, [(cfg.mix.store, cfg.mix.frac)], cfg.train.seed, 2.0)
        assert cfg.to_dict()["train"] == want.to_dict()["train"] and cfg.model == member.model == want.model
        assert cfg.optim == want.optim and cfg.mix == want.mix
    assert {r["run_id"] for rows in syn["students"].values() for r in rows} <= set(members)
    # every student the bench trained is one of its runs, the tuning's at the share not chosen too
    assert {json.loads((d / "summary.json").read_text())["run_id"] for d in student_dirs} <= set(members)
    seven = next(f for f in result["findings"] if f["id"] == "7")
    vals = {int(m): rows[0]["val_loss"] for m, rows in syn["students"].items()}
    assert seven["fall"]["value"] == pytest.approx(vals[1] - vals[3], abs=1e-4)
    assert {"synthetic-student", "synthetic-ensemble-k2"} <= set(result["recipes"])
    five = next(f for f in result["findings"] if f["id"] == "5a-seq")  # the share of the seeds' mean student
    chosen = min(syn["students"], key=lambda m: syn["students"][m][0]["select_loss"])
    assert ("(the mean of 2 seeds)" in five["unit"]) == (len(syn["students"][chosen]) == 2)
    assert all(f"{r['val_loss']:.4f}" in five["detail"] for r in syn["students"][chosen])
    # the teachers' ensemble with the two students added: its members are the teachers, then the students
    both = result["recipes"][f"teachers+synthetic-k{len(ens_dirs) + 2}"]
    assert both["run_ids"][-2:] == result["recipes"]["synthetic-ensemble-k2"]["run_ids"]
    assert (out / "plots" / "synthetic.png").is_file() or "not fitted" in (out / "report.md").read_text()
    assert (out / "tables" / "synthetic.csv").is_file()


def test_bench_population_stage_against_the_ensemble(bench_run):
    """The population's trajectories train at the chosen setting under the cyclic schedule, together as many epochs
    as the ensemble (whole cycles), keep one snapshot per cycle, and are measured against that ensemble: the curve,
    two recipes of their own, finding 8 with its interval."""
    from scarce.rundir import read_config, snapshots

    out, results, _, _ = bench_run
    result = json.loads((out / "bench.json").read_text())
    pop = result["population"]
    members = result["ensemble"]["member_ids"]
    assert len(pop["trajectories"]) == 2 and {t["run_id"] for t in pop["trajectories"]} <= set(result["run_ids"])
    total = sum(q["epochs"] for q in pop["independent_curve"][-1:])
    assert pop["population_curve"][-1]["epochs"] == pytest.approx(total, abs=1.0)  # matched, in whole cycles
    assert [q["members"] for q in pop["independent_curve"]] == list(range(1, len(members) + 1))
    for t in sorted((out / "runs" / "bench-population").iterdir()):
        cfg = read_config(t)
        assert cfg.optim.schedule == "cyclic" and cfg.objective.kind == "chain" and cfg.optim.wd_schedule == "anti"
        assert len(snapshots(t)) == round(cfg.train.epochs / cfg.optim.cycle_epochs)
    assert {"population-prior", "population-uniform", "population+ensemble-prior"} <= set(result["recipes"])
    both = result["recipes"]["population+ensemble-prior"]
    assert both["val_loss"] == pytest.approx(pop["mixture"]["prior"])
    assert set(both["run_ids"]) == {t["run_id"] for t in pop["trajectories"]} | set(members)
    assert both["flops"] == pytest.approx(result["recipes"]["population-prior"]["flops"]
                                          + sum(m["flops"] for m in pop["members"]))
    eight = next(f for f in result["findings"] if f["id"] == "8")
    assert eight["verdict"] in VERDICTS and eight["value"] == pytest.approx(pop["reach"]["prior"]["value"])
    assert eight["low"] <= eight["value"] <= eight["high"] or eight["value"] == 0
    assert "Population against the ensemble" in (out / "report.md").read_text()


def test_an_ablation_of_two_bench_runs_reads_the_bench_multiples(bench_run):
    """`scarce ablate`'s numbers on the bench's own runs: the reference it takes from the run store is the bench's,
    and its data multiple of the regularized run over the standard run is the ratio of their bench multiples."""
    from scarce.data.store import open_store
    from scarce.recipes.ablate import measure, reference_rows
    from scarce.runs.store import RunStore

    out, results, _, _ = bench_run
    result = json.loads((out / "bench.json").read_text())
    store = RunStore(results)
    try:
        std, reg = (store.get(result["recipes"][name]["run_ids"][0]) for name in ("standard", "regularized"))
    finally:
        store.close()
    val = open_store(std.config.data)
    ref = reference_rows(str(results), val)
    assert [r.id for r in ref] == [p["run_id"] for p in result["reference"]]
    m = measure(val, {"baseline": [std], "reg": [reg]},
                [{"name": "reg", "kind": "add", "base": "baseline", "variant": "reg"}], ref, n_boot=50)
    (c,) = m["comparisons"]
    eff = lambda name: result["recipes"][name]["efficiency"]["parametric"]["value"]
    assert c["multiple"]["value"] == pytest.approx(eff("regularized") / eff("standard"), rel=1e-6)
    assert c["delta"]["value"] == pytest.approx(reg.val_loss - std.val_loss)


def test_report_lines_on_the_bench_store_join_runs_differing_in_the_swept_field_alone(bench_run):
    """On a bench's own run store (every stage, several token stores): each line of every swept-setting plot joins
    runs whose settings, the token store and the stage included, differ in the swept field and nothing else."""
    from scarce.report.groups import settings, swept_lines, swept_value
    from scarce.report.report import _swept
    from scarce.runs.store import RunStore

    _, results, _, _ = bench_run
    store = RunStore(results)
    try:
        rows = store.list(status="done")
    finally:
        store.close()
    assert len({r.config.data for r in rows}) >= 3 and len({r.config.tags.get("stage") for r in rows}) >= 4
    fields = _swept(rows)
    assert "train.epochs" in fields
    for field in fields:
        lines = swept_lines(rows, field)
        assert sum(len(runs) for _, runs in lines) == sum(swept_value(r, field) is not None for r in rows)
        for _, runs in lines:
            others = [{k: v for k, v in settings(r.config.to_dict()).items() if k != field} for r in runs]
            assert all(o == others[0] for o in others), field


def test_tables_match_the_run_store(bench_run):
    from scarce.runs.store import RunStore

    out, results, _, _ = bench_run
    result = json.loads((out / "bench.json").read_text())
    runs = _csv(out / "tables" / "runs.csv")
    assert {r["id"] for r in runs} == set(result["run_ids"])
    store = RunStore(str(results))
    try:
        for r in runs:
            row = store.get(r["id"])
            assert row["status"] == "done"
            for col in ("val_loss", "val_bpb", "select_loss", "flops"):
                assert float(r[col]) == row[col], (r["id"], col)
            assert int(r["tokens_seen"]) == row["tokens_seen"]
        recipes = {r["recipe"]: r for r in _csv(out / "tables" / "recipes.csv")}
        standard = store.get(result["recipes"]["standard"]["run_ids"][0])
        assert float(recipes["standard"]["val_loss"]) == standard["val_loss"]
        reference = _csv(out / "tables" / "reference.csv")
        assert [int(r["multiple"]) for r in reference] == [1, 2, 4]
        for r in reference:
            assert float(r["val_loss"]) == store.get(r["run_id"])["val_loss"]
        ensemble = _csv(out / "tables" / "ensemble.csv")
        assert float(ensemble[0]["member_val_loss"]) == pytest.approx(store.get(ensemble[0]["member_id"])["val_loss"],
                                                                      rel=1e-5)
    finally:
        store.close()


def test_every_report_file_exists(bench_run):
    out, _, _, _ = bench_run
    for name in REPORT_FILES + tuple(f"plots/{p}" for p in PLOTS):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in REPORT_FILES:
        if name.endswith(".csv"):
            assert len(_csv(out / name)) >= 1, name


def test_every_plot_is_a_valid_non_blank_png(bench_run):
    import matplotlib.image

    out, _, _, _ = bench_run
    for png in sorted((out / "plots").glob("*.png")):
        assert png.read_bytes()[:8] == PNG_SIGNATURE, png
        img = matplotlib.image.imread(png)
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500, png
        assert img[..., :3].var() > 0.001, png  # not a blank canvas
        assert (img[..., :3].reshape(-1, 3) < 0.5).any(axis=1).mean() > 0.005, png  # some dark ink: text, points


def test_html_and_markdown_reference_every_plot(bench_run):
    import base64

    out, _, _, _ = bench_run
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    pngs = sorted((out / "plots").glob("*.png"))
    assert {p.name for p in pngs} == set(PLOTS)
    for png in pngs:
        assert base64.b64encode(png.read_bytes()).decode() in html, png.name  # embedded as it is on disk
        assert f'id="{png.stem}"' in html and f"](plots/{png.name})" in md, png.name
    assert html.count("<img ") == len(pngs)


def test_headline_names_the_default_recipe_and_its_interval(bench_run):
    from scarce.report.report import interval

    out, _, first, _ = bench_run
    result = json.loads((out / "bench.json").read_text())
    default = result["default_recipe"]
    md = (out / "report.md").read_text()
    headline = md.split("## Results")[0]
    assert f"Default recipe: `{default}`" in headline
    assert f"Data-efficiency multiple of `{default}` over the standard recipe: {interval(result['efficiency']['parametric'])}" \
        in headline
    assert interval(result["efficiency"]["empirical"]) in headline
    assert f"| {default} (default) |" in md
    for kind in ("parametric", "empirical"):
        if any("extrapolat" in w for w in result["efficiency"][kind].get("warnings", [])):
            assert "(extrapolated)" in interval(result["efficiency"][kind]) and "**Extrapolated**" in headline


def test_recipe_tables_match_the_run_store_and_bench_json(bench_run):
    from scarce.runs.store import RunStore

    out, results, _, _ = bench_run
    result = json.loads((out / "bench.json").read_text())
    recipes = {r["recipe"]: r for r in _csv(out / "tables" / "recipes.csv")}
    assert set(recipes) == set(result["recipes"])
    assert [n for n, r in recipes.items() if r["default"] == "True"] == [result["default_recipe"]]
    store = RunStore(str(results))
    try:
        for name, r in result["recipes"].items():
            row = recipes[name]
            for col in ("val_loss", "val_bpb", "flops"):
                assert (row[col] == "") if r[col] is None else float(row[col]) == r[col], (name, col)
            if r["run_ids"]:
                assert float(row["flops"]) == sum(store.get(i)["flops"] for i in r["run_ids"]), name
            for kind in ("parametric", "empirical"):
                for f, suffix in (("value", ""), ("low", "_low"), ("high", "_high")):
                    v = r["efficiency"][kind][f]
                    assert (row[f"eff_{kind}{suffix}"] == "") if v is None else float(row[f"eff_{kind}{suffix}"]) == v
        for name in ("standard", "regularized"):
            run = store.get(result["recipes"][name]["run_ids"][0])
            assert float(recipes[name]["flops"]) == run["flops"]
            assert float(recipes[name]["val_loss"]) == run["val_loss"]
            assert float(recipes[name]["val_bpb"]) == run["val_bpb"]
        single = _csv(out / "tables" / "recipe.csv")
        assert len(single) == len(result["single"]) and sum(r["chosen"] == "True" for r in single) == 3  # one per size
        for r in single:
            run = store.get(r["run_id"])
            for col in ("val_loss", "val_bpb", "select_loss"):
                assert float(r[col]) == run[col], (r["run_id"], col)
            assert float(r["weight_decay"]) == run.config.optim.weight_decay
            slowrun = run.config.model.mlp == "swiglu" and run.config.optim.optimizer == "muon"
            assert r["architecture"] == ("slowrun" if slowrun else "baseline")
        assert {r["architecture"] for r in single} == {"baseline", "slowrun"}
        ensemble = _csv(out / "tables" / "ensemble.csv")
        assert [r["member_id"] for r in ensemble] == result["ensemble"]["member_ids"]
        assert float(ensemble[-1]["ensemble_val_loss"]) == float(recipes[result["default_recipe"]]["val_loss"])
        for r in ensemble:  # the ensemble evaluation recomputes each member's val loss: equal up to float noise
            run = store.get(r["member_id"])
            assert float(r["member_val_loss"]) == pytest.approx(run["val_loss"], rel=1e-5)
            assert float(r["member_flops"]) == run["flops"]
    finally:
        store.close()
    fits = _csv(out / "tables" / "fits.csv")
    for r in fits:
        est = result["fits"][r["fit"]]["estimates"][r["estimate"]]
        for col in ("value", "low", "high"):
            assert (r[col] == "") if est[col] is None else float(r[col]) == est[col], (r["fit"], r["estimate"], col)
    assert {r["fit"] for r in fits} == {k for k, f in result["fits"].items() if f["kind"] != "unfitted"}


def test_selection_uses_select_not_val(bench_run):
    out, _, _, _ = bench_run
    result = json.loads((out / "bench.json").read_text())
    for depth in (1, 2, 3):
        mine = [r for r in result["single"] if r["depth"] == depth]
        chosen = [r for r in mine if r["chosen"]]
        assert len(chosen) == 1 and chosen[0]["select_loss"] == min(r["select_loss"] for r in mine)
    reference = result["reference"]
    assert all(r["select_loss"] <= min(s["select_loss"] for s in result["standard"]
                                       if s["depth"] == 3 and s["epochs"] in r["epochs_tried"]) + 1e-12
               for r in reference[:1])


def test_second_call_trains_nothing(bench_run):
    out, results, _, second = bench_run
    assert "evaluating" not in second  # every evaluation is read back from OUT
    batches = [line for line in second.splitlines() if "to run" in line]
    assert batches and all(", 0 to run" in line for line in batches)


def test_report_from_the_store(bench_run, tmp_path):
    out, results, _, _ = bench_run
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "r")]) == 0
    for name in ("report.md", "report.html", "tables/runs.csv", "plots/loss_vs_compute.png", "plots/data_scaling.png"):
        assert (tmp_path / "r" / name).stat().st_size > 0
    assert (tmp_path / "r" / "plots" / "data_scaling.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("argv, message", [
    (["bench", "--preset", "nope", "--out", "X"], "unknown bench preset 'nope'"),
    (["bench", "--recipe", "nope", "--out", "X"], "unknown bench recipe 'nope'"),
    (["bench", "--data", "/no/such/store", "--out", "X"], "/no/such/store"),
    (["bench", "--data", "/some/store", "--data-seed", "2", "--out", "X"], "prepare it with `scarce prepare --seed N`"),
    (["bench", "--data-seed", "-1", "--out", "X"], "seed must be an integer in [0, 2^63)"),
    (["report", "--sweep", "no-such-sweep", "--out", "X"], "no finished runs of sweep 'no-such-sweep'"),
])
def test_bad_input_is_one_line_exit_2(argv, message, tmp_path, capsys):
    argv = [a.replace("X", str(tmp_path / "o")) for a in argv] + ["--results", str(tmp_path / "res")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_continued_pretraining_bench_starts_every_run_from_the_pretrained_model(corpus, tmp_path):
    """A CPT preset: a model pretrained on one corpus, every run of the bench continued from it on another
    corpus cut with the same tokenizer; bench.json says where CPT started."""
    other = tmp_path / "other"
    other.mkdir()
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[80:160]
    (other / "docs.jsonl").write_text("\n".join(
        json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")[:900]}) for p in files) + "\n")
    BENCH_PRESETS["micro-cpt"] = BenchPreset(
        "micro-cpt", budget_tokens=1200, multiples=(1, 2, 4), corpus=f"files:{other}", vocab_size=300,
        select_tokens=600, val_tokens=600, tokenizer_bytes=0, heldout_window=200, overrides=MICRO_RUN, sizes=(2,),
        standard_epochs=(1, 2), reference_epochs={2: (1,), 4: (1,)}, lrs=(1e-3,), weight_decays=(0.1, 0.8),
        epochs=(1, 2), max_rounds=1, members=2, n_boot=50, downstream_items=0, pretrain_corpus=corpus,
        pretrain_tokens=3000)
    try:
        argv = ["bench", "--preset", "micro-cpt", "--out", str(tmp_path / "out"), "--results", str(tmp_path / "res"),
                "--workers", "1"]
        assert main(argv) == 0
    finally:
        del BENCH_PRESETS["micro-cpt"]
    result = json.loads((tmp_path / "out" / "bench.json").read_text())
    cpt = result["cpt"]
    assert cpt["base_run"] in result["run_ids"] and cpt["base_val_loss"] > 0
    configs = [json.loads((Path(d) / "config.json").read_text())
               for d in (tmp_path / "out" / "runs").glob("bench-*/*") if Path(d).is_dir()]
    continued = [c for c in configs if c["tags"]["stage"] != "pretrain"]
    assert len(continued) == len(configs) - 1 >= 6
    assert {c["init"]["source"] for c in continued} == {cpt["base_run_dir"]}
    pretrain = next(c for c in configs if c["tags"]["stage"] == "pretrain")
    assert pretrain["data"] not in {c["data"] for c in continued}
    assert result["recipes"]["ensemble-k2"]["val_loss"] < cpt["base_val_loss"]
    assert "Continued pretraining" in (tmp_path / "out" / "report.md").read_text()


def test_a_preset_beyond_the_embedded_corpus_needs_data(tmp_path, capsys):
    assert main(["bench", "--preset", "gpu-100m", "--out", str(tmp_path / "out"), "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: bench preset gpu-100m needs --data STORE") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_a_data_seed_prepares_another_sample_in_its_own_folder(micro, tmp_path):
    from scarce.bench.pipeline import bench_stores

    zero = bench_stores(micro, None, tmp_path / "stores", lambda *a: None)
    two = bench_stores(micro, None, tmp_path / "stores" / "seed-2", lambda *a: None, seed=2)
    assert zero[1].path == tmp_path / "stores" / "train-1200" and two[1].path == tmp_path / "stores" / "seed-2" / "train-1200"
    assert two[4].manifest["request"]["seed"] == 2 and zero[4].manifest["request"]["seed"] == 0
    assert zero[4].fingerprint != two[4].fingerprint
    for stores in (zero, two):  # nested train prefixes of one store, as without a seed
        assert all(len(stores[m].split("train")) == 1200 * m for m in (1, 2, 4))


def test_a_preset_with_pieces_prepares_its_stores_in_pieces(micro, tmp_path):
    import dataclasses

    from scarce.bench.pipeline import bench_stores

    stores = bench_stores(dataclasses.replace(micro, piece_bytes=300), None, tmp_path / "stores", lambda *a: None)
    assert stores[4].manifest["request"]["piece_bytes"] == 300 and stores[1].manifest["request"]["piece_bytes"] == 300
    assert all(len(stores[m].split("train")) == 1200 * m for m in (1, 2, 4))  # nested prefixes, as whole
    assert (stores[1].split("train") == stores[4].split("train")[:1200]).all()


def test_what_the_bench_trained_is_its_run_store(bench_run):
    """The pipeline's ledger (every row a stage was handed: bench.json's run_ids, token passes and run seconds)
    is exactly the set of runs in the run store the bench wrote, synthetic students included, each once."""
    out, results, _, _ = bench_run
    result = json.loads((out / "bench.json").read_text())
    store = RunStore(str(results), read_only=True)
    try:
        rows = store.list()
    finally:
        store.close()
    assert len(result["run_ids"]) == len(set(result["run_ids"])) == len(rows)
    assert set(result["run_ids"]) == {r.id for r in rows}
    assert result["token_passes"] == sum(r.tokens_seen or 0 for r in rows)
    assert any(r.config.tags.get("stage") == "synthetic" for r in rows)
