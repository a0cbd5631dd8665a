"""The results files quote only what their artifacts hold.

DESIGN.md: every number quoted in docs or results files comes from a committed artifact (bench.json, a results
JSON) that a script renders. Two checks hold the files to it:

- the tables between `<!-- render: ... -->` markers in benchmarks/results/*.md are what
  benchmarks/render_results.py renders from their JSON today (`render_results.py --check`);
- every multiple quoted with two decimals (`2.03x`, `1.82x [1.39, 2.97]`) in benchmarks/results/*.md and
  docs/*.md is a multiple some JSON under benchmarks/results/ holds (to the decimals shown; a quoted interval
  must match one artifact's value, low and high together), or a published number listed below with its source.

"A multiple some JSON holds" means a number under a key naming multiples (`efficiency`, `headline`,
`per_sample`, `multiple`), in a finding whose unit is `x`, in the per-recipe combinations of a samples.json, or
written as `1.96x [1.9, 2.01]` in one of the artifact's own strings (a finding's `detail`; never its
`published`). Every number of every JSON would not do: their losses alone cover most two-decimal numbers
between 1 and 3, so any multiple would pass.

Left out: the files in TIME_RATIOS, whose multiples are speed ratios; docs/LOG.md, the dated log of past
sessions (history, not a results claim: it keeps the numbers each session measured, artifacts committed or
not); multiples written with fewer decimals (`~2x`, `1.9x`), which are rough readings rather than quotes; and
timings and losses, which no check here reads.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"

# Published multiples the files quote, each with its source.
PUBLISHED = {
    "2.29": "Kim et al., Pre-training under infinite compute (arXiv 2509.14786): the regularized recipe's data efficiency",
    "5.17": "Kim et al.: the joint limit's data efficiency (ensembles of regularized models, K and N to infinity)",
    "1.48": "arXiv 2603.18534 (megadocs): generations per real document",
    "1.80": "arXiv 2603.18534 (megadocs): stitched megadocs",
}

# Files whose multiples are ratios of time, not of data: they are outside this check (their scripts print
# tables and write no JSON; see the module docstring).
TIME_RATIOS = {
    "knob_cost_cpu.md": "time per token of a knob against the baseline's (benchmarks/knob_cost.py)",
    "side_by_side_cpu.md": "tokens/s of scarce's step against a plain PyTorch loop's (benchmarks/side_by_side.py)",
    "throughput_cpu.md": "compiled against eager step time (benchmarks/throughput.py)",
}

# Quotes in a file another change owns, left to its owner: (file, multiple) -> why. Remove an entry once fixed.
PENDING: dict = {}

MULTIPLE = re.compile(r"(?<![\w.])(\d+\.\d\d)x\b(?:\**\s*\[(\d+(?:\.\d+)?)x?, (\d+(?:\.\d+)?)x?\])?")
KEYS = ("efficiency", "headline", "per_sample", "multiple")


def _load_renderer():
    spec = importlib.util.spec_from_file_location("render_results", ROOT / "benchmarks" / "render_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- what the artifacts hold ----

def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Artifacts:
    """The multiples held by every JSON under a results folder: single values and (value, low, high) triples."""

    def __init__(self, root: Path):
        self.values: list[float] = []
        self.triples: list[tuple[float, float, float]] = []
        for path in sorted(root.rglob("*.json")):
            data = json.loads(path.read_text())
            self._walk(data, False, top=data)

    def _walk(self, o, on: bool, top=None) -> None:
        if _is_number(o):
            if on:
                self.values.append(o)
        elif isinstance(o, str):
            self._strings(o)
        elif isinstance(o, list):
            for v in o:
                self._walk(v, on)
        elif isinstance(o, dict):
            self._dict(o, on or str(o.get("unit") or "").startswith("x"), top)

    def _dict(self, o: dict, on: bool, top) -> None:
        lo, hi = o.get("low", o.get("lo")), o.get("high", o.get("hi"))
        if on and all(_is_number(v) for v in (o.get("value"), lo, hi)):
            self.triples.append((o["value"], lo, hi))
        samples_json = top is o and "per_sample" in o  # its `recipes` combine multiples over the samples
        for key, v in o.items():
            if key != "published":  # the paper's claim beside a finding, not a measurement
                inside = on or any(k in key for k in KEYS) or (samples_json and key == "recipes")
                self._walk(v, inside)

    def _strings(self, text: str) -> None:
        for m in MULTIPLE.finditer(text):
            value, lo, hi = m.groups()
            self.values.append(float(value))
            if lo is not None:
                self.triples.append((float(value), float(lo), float(hi)))

    def holds(self, value: str, lo: str | None, hi: str | None) -> bool:
        same = lambda x, quoted: f"{x:.{_decimals(quoted)}f}" == quoted
        if lo is None:
            return any(same(v, value) for v in self.values + [t[0] for t in self.triples])
        return any(same(v, value) and same(a, lo) and same(b, hi) for v, a, b in self.triples)


# ---- the checker ----

def quoted_files(results: Path, docs: Path | None) -> list[Path]:
    files = sorted(p for p in results.glob("*.md") if p.name not in TIME_RATIOS)
    if docs is not None:
        files += sorted(p for p in docs.glob("*.md") if p.name != "LOG.md")
    return files


def _shown(path: Path, results: Path) -> str:
    base = ROOT if path.is_relative_to(ROOT) else results.parent
    return str(path.relative_to(base))


def unbacked_quotes(results: Path, docs: Path | None = None, published=PUBLISHED):
    """(path, line, value, quote) of each two-decimal multiple no artifact under `results` holds and no paper is
    cited for."""
    artifacts = Artifacts(results)
    for path in quoted_files(results, docs):
        text = path.read_text()
        for m in MULTIPLE.finditer(text):  # the whole text: an interval may follow on the next line
            value, lo, hi = m.groups()
            if not (artifacts.holds(value, lo, hi) or (lo is None and value in published)):
                yield path, text.count("\n", 0, m.start()) + 1, value, " ".join(m.group(0).split())


def unbacked(results: Path, docs: Path | None = None, published=PUBLISHED, pending=PENDING) -> list[str]:
    """'file:line: quote' for each unbacked multiple, but those `pending` names."""
    return [f"{_shown(path, results)}:{line}: {quote}"
            for path, line, value, quote in unbacked_quotes(results, docs, published)
            if (path.name, value) not in pending]


# ---- tests ----

def test_rendered_blocks_are_up_to_date():
    renderer = _load_renderer()
    stale = renderer.stale_files(RESULTS)
    assert not stale, "run `python benchmarks/render_results.py`: out of date: " + ", ".join(p.name for p in stale)


def test_every_quoted_multiple_comes_from_an_artifact():
    problems = unbacked(RESULTS, DOCS)
    assert not problems, "multiples in no committed artifact:\n" + "\n".join(problems)


def test_every_pending_quote_is_still_there():
    found = {(path.name, value) for path, _, value, _ in unbacked_quotes(RESULTS, DOCS)}
    fixed = sorted(set(PENDING) - found)
    assert not fixed, f"fixed, remove from PENDING: {fixed}"


def _bench(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    (results / "run").mkdir(parents=True)
    bench = {"default_recipe": "ensemble-k4",
             "recipes": {"ensemble-k4": {"val_loss": 3.5, "flops": 1e12, "efficiency": {
                 "parametric": {"value": 1.9576, "low": 1.9043, "high": 2.0128}}}},
             "findings": [{"id": "6", "unit": "x", "value": 1.9576, "low": 1.9043, "high": 2.0128,
                           "reproduced": None, "published": "Kim et al.: 5.17x joint"}]}
    (results / "run" / "bench.json").write_text(json.dumps(bench))
    return results


def test_the_checker_fails_a_number_no_artifact_holds(tmp_path):
    results = _bench(tmp_path)
    (results / "run.md").write_text("backed 1.96x [1.90, 2.01] and **1.96x**\nunbacked 2.19x here\n"
                                    "interval off 1.96x [1.90, 2.02]\nloss 3.50x is no multiple\n")
    problems = unbacked(results, published={})
    assert problems == ["results/run.md:2: 2.19x", "results/run.md:3: 1.96x [1.90, 2.02]",
                        "results/run.md:4: 3.50x"]
    assert unbacked(results, published={"2.19": "a paper"})[0] == "results/run.md:3: 1.96x [1.90, 2.02]"


def test_a_published_string_in_an_artifact_backs_nothing(tmp_path):
    results = _bench(tmp_path)
    (results / "run.md").write_text("Kim et al. measured 5.17x.\n")
    assert unbacked(results, published={}) == ["results/run.md:1: 5.17x"]


def test_render_check_fails_on_a_stale_block_and_writing_fixes_it(tmp_path):
    renderer = _load_renderer()
    results = _bench(tmp_path)
    md = results / "run.md"
    md.write_text("# run\n<!-- render: run/bench.json multiples -->\nhand-typed\n<!-- /render -->\ntail\n")
    assert renderer.main(["--check", "--root", str(results)]) == 1
    assert renderer.main(["--root", str(results)]) == 0
    text = md.read_text()
    assert "| ensemble-k4 (default) | 3.5000 | - | 1.96x [1.90, 2.01] | - | 1.00e+12 |" in text
    assert text.endswith("<!-- /render -->\ntail\n") and "hand-typed" not in text
    assert renderer.main(["--check", "--root", str(results)]) == 0


def test_findings_render_a_verdict_where_bench_json_has_one(tmp_path):
    renderer = _load_renderer()
    bench = {"findings": [{"id": "1", "value": 0.5, "low": 0.4, "high": 0.6, "reproduced": True,
                           "verdict": "reproduced (at a bound)"},
                          {"id": "2", "value": None, "reproduced": None}, {"id": "3", "reproduced": False}]}
    text = renderer.render_findings(bench, {})
    assert "| 1 | - | - | 0.500 [0.400, 0.600] | - | - | reproduced (at a bound) |" in text
    assert text.endswith("| 2 | - | - | - | - | - | not shown |\n| 3 | - | - | - | - | - | not reproduced |")


def test_render_tolerates_missing_and_new_fields():
    renderer = _load_renderer()
    for kind in ("multiples", "findings"):
        assert renderer.SINGLE[kind]({}, {}).count("\n") == 1  # a header, no rows
    bench = {"warnings": ["the reference law's E is at its bound"],
             "recipes": {"standard": {"efficiency": {"parametric": {
                 "value": 1.0, "low": 0.9, "high": 1.1, "covers": ["val windows", "fits"], "disagree": False}}}}}
    text = renderer.render_multiples(bench, {})
    assert "| standard | - | - | 1.00x [0.90, 1.10] | - | - | val windows, fits | no |" in text
    assert text.endswith("Warning: the reference law's E is at its bound")
