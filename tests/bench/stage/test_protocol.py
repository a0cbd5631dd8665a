"""The stage protocol's registry and bench.json: each stage's entry sits at bench.json's top level under its key,
where `BenchResult.stages` stands among the fields, and reads back."""

from __future__ import annotations

import dataclasses

from scarce.bench.result import BenchResult
from scarce.bench.stage import STAGES


def _result(**kw) -> BenchResult:
    return BenchResult(preset="p", recipe="ensemble", default_recipe="ensemble-k4", budget_tokens=1, recipes={},
                       efficiency={}, fits={}, reference=[], single=[], **kw)


def test_stage_entries_sit_at_the_top_level_of_bench_json_in_the_fields_order():
    entries = {s.json_key(): {"entry of": s.name} for s in STAGES}
    d = _result(stages=entries).to_json()
    assert "stages" not in d
    assert all(d[k] == v for k, v in entries.items())
    fields = [f.name for f in dataclasses.fields(BenchResult)]
    at = fields.index("stages")
    keys = list(d)
    assert keys[:at] == fields[:at] and keys[at:at + len(entries)] == list(entries)
    assert keys[at + len(entries):] == fields[at + 1:]
    back = BenchResult.from_json(d)
    assert back == _result(stages=entries) and back.to_json() == d


def test_a_stage_that_did_not_run_reads_none():
    d = _result(stages={s.json_key(): None for s in STAGES}).to_json()
    assert all(d[s.json_key()] is None for s in STAGES)
    assert BenchResult.from_json({k: v for k, v in d.items() if k not in {s.json_key() for s in STAGES}}).stages \
        == {s.json_key(): None for s in STAGES}


def test_a_stage_that_did_not_run_finds_its_findings_not_run():
    from scarce.bench.findings import Bench
    from scarce.bench.presets import BENCH_PRESETS
    from scarce.bench.stages import RegularizedStage, Stages, StandardStage

    b = Bench(BENCH_PRESETS["cpu-tiny"], Stages(StandardStage([]), RegularizedStage({}, [])), [], {}, {}, {}, None, [])
    for s in STAGES:
        found = s.findings(b, None)
        assert all(f["verdict"] == "not run" for f in found), s.name
