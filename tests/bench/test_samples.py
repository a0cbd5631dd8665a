"""`scarce bench --samples S`: the bench on S samples of its corpus and one combined headline."""

from __future__ import annotations

import json
import sysconfig
import time
from pathlib import Path

import pytest

from scarce.bench import BENCH_PRESETS, BenchPreset, BenchResult, samples
from scarce.bench.samples import combine_results
from scarce.cli.main import main
from scarce.errors import UserError
from scarce.runs.executors import Execution

RUN = {"model.aspect_ratio": 16, "model.head_dim": 16, "model.seq_len": 32, "train.batch_size": 4,
       "train.log_every": 1000}


@pytest.fixture
def tiny_preset(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:80]
    (root / "docs.jsonl").write_text("\n".join(json.dumps({"text": p.read_text(encoding="utf-8", errors="replace")
                                                                    [:900]}) for p in files) + "\n")
    p = BenchPreset("samples-micro", budget_tokens=1200, multiples=(1, 2, 4), corpus=f"files:{root}", vocab_size=300,
                    select_tokens=600, val_tokens=600, tokenizer_bytes=0, heldout_window=200, overrides=RUN,
                    sizes=(1, 2), standard_epochs=(1, 2), reference_epochs={2: (1, 2), 4: (1,)}, lrs=(3e-3,),
                    weight_decays=(0.1, 0.8), epochs=(2,), max_rounds=1, members=2, n_boot=100,
                    downstream_items=0)
    BENCH_PRESETS[p.name] = p
    yield p
    del BENCH_PRESETS[p.name]


def test_two_samples_give_one_combined_report(tiny_preset, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["bench", "--preset", tiny_preset.name, "--out", str(out), "--results", str(tmp_path / "res"),
            "--workers", "1", "--samples", "2"]
    assert main(argv) == 0
    combined = json.loads((out / "samples.json").read_text())
    assert combined["samples"] == 2 and combined["data_seeds"] == [0, 1]
    seeds = [json.loads((out / f"sample-{s}" / "bench.json").read_text())["data_seed"] for s in (0, 1)]
    assert seeds == [0, 1]
    fingerprints = {json.loads((out / f"sample-{s}" / "bench.json").read_text())["data"] for s in (0, 1)}
    assert len(fingerprints) == 2  # two samples of the corpus, not one twice
    head = combined["headline"]["parametric"]
    per = [s["efficiency"]["parametric"]["value"] for s in combined["per_sample"]]
    if head["value"] is not None:
        assert head["values"] == pytest.approx(per) and head["low"] <= head["value"] <= head["high"]
        assert head["prediction_low"] is None  # two samples: no interval for one more
    md = (out / "report.md").read_text()
    assert "over 2 samples of its corpus" in md and "## Per sample" in md and "## Findings" in md
    assert all(f["status"] for f in combined["findings"])
    assert "over 2 samples" in capsys.readouterr().out or head["value"] is None


def _result(seed, value, low, high, reproduced):
    return BenchResult(preset="p", recipe="ensemble", default_recipe="ensemble-k4", budget_tokens=1, fits={},
                       recipes={"ensemble-k4": {"efficiency": {"parametric": {"value": value, "low": low, "high": high},
                                                               "empirical": None}}},
                       efficiency={}, reference=[], single=[], data_seed=seed,
                       findings=[{"id": "1", "name": "regularization helps", "reproduced": reproduced}])


def test_combination_of_samples_and_their_findings():
    per = [_result(0, 2.08, 1.94, 2.20, True), _result(1, 1.72, 1.69, 1.76, False), _result(2, 1.9, 1.8, 2.0, True)]
    combined = combine_results(per)
    head = combined["headline"]["parametric"]
    assert head["values"] == [2.08, 1.72, 1.9] and head["low"] < 1.72 and head["high"] > 2.08
    assert head["prediction_low"] < head["low"] and head["prediction_high"] > head["high"]
    assert combined["headline"]["empirical"]["value"] is None  # a sample without an interval: said, not combined
    # an older bench.json's reproduced flags read as verdicts; samples that differ read "not shown" over all
    assert combined["findings"][0]["status"] == "samples differ: reproduced, not reproduced, reproduced"
    assert combined["findings"][0]["verdict"] == "not shown"
    assert combine_results(per[::2])["findings"][0]["status"] == "reproduced on every sample"


def test_a_threshold_finding_is_judged_on_the_combined_interval():
    """Student gain shares of 0.55 [0.52, 0.58], 0.62 [0.58, 0.66] and 0.45 [0.42, 0.48] against the 0.5 the finding
    asks for: two samples reproduce it, the combined interval (random effects, covering the sample) does not."""
    share = lambda v, lo, hi: {"id": "5a-seq", "name": "student keeps most of the gain", "value": v, "low": lo,
                               "high": hi, "reproduced": lo > 0.5, "above": 0.5}
    per = [_result(s, 2.0, 1.9, 2.1, True) for s in range(3)]
    for r, f in zip(per, [share(0.55, 0.52, 0.58), share(0.62, 0.58, 0.66), share(0.45, 0.42, 0.48)]):
        r.findings = [f]
    finding = combine_results(per)["findings"][0]
    assert finding["status"].startswith("not shown on the combined interval 0.539") and finding["verdict"] == "not shown"
    assert "(per sample: reproduced, reproduced, not reproduced)" in finding["status"]
    assert finding["combined"]["low"] < 0.5 < finding["combined"]["high"]
    for r in per:
        r.findings = [share(r.findings[0]["value"] + 0.2, r.findings[0]["low"] + 0.2, r.findings[0]["high"] + 0.2)]
    assert combine_results(per)["findings"][0]["status"].startswith("reproduced on the combined interval")


def test_the_report_prices_each_recipe_on_a_named_device(tiny_preset, tmp_path):
    """--gpu A100 --gpu-price 2: device-hours = training FLOPs / (312 TFLOP/s x MFU 0.4) / 3600, dollars = 2 x that."""
    import csv

    out = tmp_path / "out"
    argv = ["bench", "--preset", tiny_preset.name, "--out", str(out), "--results", str(tmp_path / "res"),
            "--workers", "1", "--gpu", "A100", "--gpu-price", "2"]
    assert main(argv) == 0
    result = json.loads((out / "bench.json").read_text())
    assert result["cost"] == {"gpu": "A100", "flops_per_s": 312e12, "mfu": 0.4, "price": 2.0}
    with open(out / "tables" / "recipes.csv", newline="") as f:
        rows = {r["recipe"]: r for r in csv.DictReader(f)}
    for name, r in result["recipes"].items():
        if r["flops"] is not None:
            hours = r["flops"] / (312e12 * 0.4) / 3600
            assert float(rows[name]["device_hours"]) == pytest.approx(hours)
            assert float(rows[name]["dollars"]) == pytest.approx(2 * hours)
    md = (out / "report.md").read_text()
    assert "device-hours | dollars |" in md and "A100's peak 3.12e+14 FLOP/s x MFU 0.4" in md
    assert main(["bench", "--preset", tiny_preset.name, "--out", str(tmp_path / "o2"), "--gpu-price", "2"]) == 2


def test_samples_at_once_on_shared_workers_read_the_same_numbers(tiny_preset, tmp_path, capsys):
    """With 2 workers the samples run at the same time on one pool of workers: every sample's runs and
    numbers are those of the samples run one after another (in-process, 1 worker)."""
    numbers = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out-{workers}"
        assert main(["bench", "--preset", tiny_preset.name, "--out", str(out), "--results",
                     str(tmp_path / f"res-{workers}"), "--workers", workers, "--samples", "2"]) == 0
        benches = [json.loads((out / f"sample-{s}" / "bench.json").read_text()) for s in (0, 1)]
        assert [b["workers"] for b in benches] == [int(workers)] * 2
        assert ("2 samples at once on 2 shared worker(s)" in capsys.readouterr().out) == (workers == "2")
        numbers[workers] = [({n: r["val_loss"] for n, r in b["recipes"].items()}, len(b["run_ids"])) for b in benches]
    assert numbers["2"] == numbers["1"]
    assert numbers["1"][0] != numbers["1"][1]  # two samples, not one twice


def test_a_failed_sample_stops_the_samples_at_once_without_waiting(monkeypatch, tmp_path):
    """One sample's error reaches the caller at once, while another sample is still busy in this process (a
    fit, an evaluation): the bench does not wait for it."""
    def fake_bench(out, preset, data_seed, recipe, execution, log):
        if data_seed == 0:
            raise UserError("sample 0 failed")
        time.sleep(60)

    monkeypatch.setattr(samples, "bench", fake_bench)
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="sample 0 failed"):
        samples.bench_samples(tmp_path / "out", "cpu-tiny", 2, execution=Execution(workers=2), log=lambda _: None)
    assert time.perf_counter() - t0 < 20
