"""Render the tables of the results files from their artifacts (bench.json, samples.json).

In a results markdown file (benchmarks/results/*.md) a block

    <!-- render: bench_cpu_full/bench.json multiples -->
    ...
    <!-- /render -->

is replaced by the table that kind renders from that JSON (paths relative to benchmarks/results/). Kinds:

    multiples        bench.json: each recipe's val loss, bits/byte, parametric and empirical multiple [95%], FLOPs
    findings         bench.json: each finding's published claim, value [95%], detail and verdict
    compare          several bench.json side by side (`path=label` names a column): multiples, val losses,
                     the reference, the findings, hygiene
    samples          samples.json: each recipe's multiple per sample and combined over the samples
    sample-findings  samples.json: each finding's value per sample and its status
    population       several recipe.json of `scarce recipe population` side by side: the population and the
                     ensemble at their last points, the epochs-to-reach ratio, the prior's gain
    population-curve one such recipe.json: both allocation curves (val loss against total epochs)
    ablation         a recipe.json of `scarce ablate`: each change's paired val difference and data multiple [95%]
                     and its cost
    member-recipe    member_recipe.json of benchmarks/member_recipe.py: ensembles of each member recipe per seed,
                     over the seeds with their data multiple, and the recipes' paired differences

`only=1,6,7` after the kind keeps those findings (findings, sample-findings). A path may carry a column label:
`bench_cpu_small/bench.json="sample 0, cosine"` (compare).

    python benchmarks/render_results.py            # rewrite every results file's blocks in place
    python benchmarks/render_results.py --check    # exit 1 naming each file whose blocks are out of date

Fields missing in an older bench.json render as "-" or leave their row or column out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
import tempfile
from itertools import zip_longest
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BLOCK = re.compile(r"(<!-- render: (.*?) -->\n)(.*?)(<!-- /render -->)", re.S)
DASH = "-"


# ---- formatting ----

def num(v, digits=3, scale=1.0):
    """A number with fixed decimals; '-' where the artifact has none; inf as 'inf'; text as it is."""
    if v is None or isinstance(v, bool):
        return DASH
    if not isinstance(v, (int, float)):
        return str(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v * scale:.{digits}f}"


def interval(est, digits=3, suffix="", scale=1.0, ends=""):
    """'v [lo, hi]' from a dict with value/low/high (or lo/hi); `suffix` after the value, `ends` after each end."""
    if not isinstance(est, dict) or est.get("value") is None:
        return DASH
    lo, hi = est.get("low", est.get("lo")), est.get("high", est.get("hi"))
    text = num(est["value"], digits, scale) + suffix
    if lo is None and hi is None:
        return text
    return f"{text} [{num(lo, digits, scale)}{ends}, {num(hi, digits, scale)}{ends}]"


def multiple(est):
    return interval(est, 2, "x")


def anything(v):
    """A field of unknown shape (a future `covers`, `disagree`): lists joined, booleans as yes/no."""
    if v is None:
        return DASH
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(anything(x) for x in v) or DASH
    if isinstance(v, dict):
        return "; ".join(f"{k}: {anything(x)}" for k, x in v.items()) or DASH
    if isinstance(v, float):
        return num(v)
    return str(v)


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header, rows) -> str:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(finding) -> str:
    """The finding's own verdict string where bench.json has one, else its boolean `reproduced`."""
    if finding.get("verdict"):
        return finding["verdict"]
    return {True: "reproduced", False: "not reproduced"}.get(finding.get("reproduced"), "not shown")


def finding_value(f) -> str:
    unit = str(f.get("unit") or "")
    if unit.startswith("x"):
        return multiple(f)
    if unit.startswith("share"):
        return interval(f, 0, "%", scale=100, ends="%")
    return interval(f)


# ---- bench.json ----

def recipe_order(bench) -> list[str]:
    """The standard and regularized recipes, then the others by training FLOPs (extrapolated ones last)."""
    recipes = bench.get("recipes") or {}
    flops = lambda name: recipes[name].get("flops")
    first = lambda name: ["standard", "regularized"].index(name) if name in ("standard", "regularized") else 2
    return sorted(recipes, key=lambda name: (first(name), flops(name) is None, flops(name) or 0))


def recipe_label(bench, name) -> str:
    return f"{name} (default)" if name == bench.get("default_recipe") else name


def extra_keys(recipes) -> list[tuple[str, str]]:
    """(kind, key) of per-multiple fields beyond the number itself that some recipe has (non-empty)."""
    skip = {"value", "low", "high", "lo", "hi"}
    found = []
    for r in recipes.values():
        for kind, est in (r.get("efficiency") or {}).items():
            for key, v in (est or {}).items():
                if key not in skip and v not in (None, [], {}, "") and (kind, key) not in found:
                    found.append((kind, key))
    return found


def render_multiples(bench, _opts) -> str:
    recipes = bench.get("recipes") or {}
    extras = extra_keys(recipes)
    header = ["recipe", "val loss (nats/token)", "bits/byte", "data efficiency, parametric [95%]",
              "empirical [95%]", "training FLOPs"] + [f"{kind} {key}" for kind, key in extras]
    base = (bench.get("cpt") or {}).get("base_val_loss")
    rows = [] if base is None else [["pretrained model, before CPT", num(base, 4)] + [DASH] * (len(header) - 2)]
    for name in recipe_order(bench):
        r, eff = recipes[name], recipes[name].get("efficiency") or {}
        flops = DASH if r.get("flops") is None else f"{r['flops']:.2e}"
        rows.append([recipe_label(bench, name), num(r.get("val_loss"), 4), num(r.get("val_bpb"), 4),
                     multiple(eff.get("parametric")), multiple(eff.get("empirical")), flops]
                    + [anything((eff.get(kind) or {}).get(key)) for kind, key in extras])
    return table(header, rows) + warnings_note(bench)


def warnings_note(bench) -> str:
    warnings = bench.get("warnings") or []
    return "".join(f"\n\nWarning: {w if isinstance(w, str) else anything(w)}" for w in warnings)


def chosen(findings, opts) -> list[dict]:
    """The findings in order, only those named by `only=1,6,7` where the block says so."""
    only = opts.get("only", "").split(",") if opts.get("only") else None
    return [f for f in findings or [] if only is None or str(f.get("id")) in only]


def render_findings(bench, opts) -> str:
    rows = [[f.get("id", DASH), f.get("name", DASH), f.get("published", DASH), finding_value(f),
             f.get("unit") or DASH, f.get("detail") or DASH, verdict(f)]
            for f in chosen(bench.get("findings"), opts)]
    header = ["finding", "", "published", "this run [95%]", "unit", "detail", "verdict"]
    return table(header, rows)


# ---- several bench.json side by side ----

def reference_cell(bench) -> str:
    refs = bench.get("reference") or []
    return " / ".join(f"{num(r.get('val_loss'))} ({num(r.get('epochs'), 0)})" for r in refs) or DASH


def finding_cell(f) -> str:
    return f"{finding_value(f)}, {verdict(f)}" if f.get("value") is not None else verdict(f)


def hygiene_rows(benches) -> list[list[str]]:
    h = [b.get("hygiene") or {} for b in benches]
    se_max = lambda x: max((d.get("se") for d in x.get("paired_differences") or [] if d.get("se") is not None),
                           default=x.get("paired_difference_se"))
    return [["paired SE on val (standard best vs regularized), max"] + [num(se_max(x), 4) for x in h],
            ["|select - val| on the reference, mean / max"]
            + [f"{num(x.get('select_val_gap_mean'))} / {num(x.get('select_val_gap_max'))}" for x in h]]


def cost_rows(benches) -> list[list[str]]:
    runs = ["runs"] + [str(len(b["run_ids"])) if b.get("run_ids") is not None else DASH for b in benches]
    seconds = lambda b: b.get("run_seconds") if isinstance(b.get("run_seconds"), (int, float)) else None
    minutes = ["process-minutes of training"] + [num(s / 60 if (s := seconds(b)) is not None else None, 1)
                                                 for b in benches]
    return [runs, minutes]


def ordered_union(lists) -> list[str]:
    out = []
    for xs in lists:
        out += [x for x in xs if x not in out]
    return out


def recipe_rows(benches) -> list[list[str]]:
    names = ordered_union(recipe_order(b) for b in benches)
    get = lambda b, n: (b.get("recipes") or {}).get(n) or {}
    rows = []
    for kind in ("parametric", "empirical"):
        rows += [[f"{n}, {kind}"] + [multiple((get(b, n).get("efficiency") or {}).get(kind)) for b in benches]
                 for n in names]
    rows += [[f"val loss: {n}"] + [num(get(b, n).get("val_loss"), 4) for b in benches] for n in names]
    return rows


def finding_rows(benches) -> list[list[str]]:
    by_id = [{str(f.get("id")): f for f in b.get("findings") or []} for b in benches]
    ids = [i for i in ordered_union(list(x) for x in by_id) if any((x.get(i) or {}).get("value") is not None
                                                                  for x in by_id)]
    return [[f"finding {i}"] + [finding_cell(x[i]) if i in x else DASH for x in by_id] for i in ids]


def render_compare(benches, labels) -> str:
    rows = recipe_rows(benches)
    rows.append(["reference val 1x / 2x / 4x / 8x (epochs)"] + [reference_cell(b) for b in benches])
    rows += finding_rows(benches) + hygiene_rows(benches) + cost_rows(benches)
    return table([""] + labels, rows)


# ---- samples.json ----

def sample_labels(samples) -> list[str]:
    seeds = samples.get("data_seeds") or [p.get("data_seed") for p in samples.get("per_sample") or []]
    return [f"sample {i} (data seed {s})" for i, s in enumerate(seeds)]


def per_sample_cells(samples, name, kind, combined) -> list[str]:
    """Each sample's multiple; with its interval where samples.json keeps one (the default recipe)."""
    cells = [num(v, 2) + "x" if v is not None else DASH for v in combined.get("values") or []]
    if name != samples.get("default_recipe"):
        return cells
    per = [(p.get("efficiency") or {}).get(kind) for p in samples.get("per_sample") or []]
    return [multiple(e) if e else c for e, c in zip_longest(per, cells, fillvalue=DASH)]


def render_samples(samples, _opts) -> str:
    labels = sample_labels(samples)
    header = ["recipe", "multiple"] + labels + ["combined [95%]", "one more sample [95%]", "tau"]
    recipes = samples.get("recipes") or {}
    names = sorted(recipes, key=lambda n: n != samples.get("default_recipe"))
    rows = []
    for name in names:
        for kind, est in sorted((recipes[name] or {}).items(), key=lambda kv: kv[0] != "parametric"):
            cells = per_sample_cells(samples, name, kind, est)
            cells += [DASH] * (len(labels) - len(cells))
            rows.append([recipe_label(samples, name), kind] + cells[:len(labels)]
                        + [multiple(est), prediction(est), num(est.get("tau"), 2)])
    return table(header, rows)


def prediction(est) -> str:
    if est.get("prediction_low") is None:
        return DASH
    return f"[{num(est['prediction_low'], 2)}x, {num(est.get('prediction_high'), 2)}x]"


def render_sample_findings(samples, opts) -> str:
    labels = sample_labels(samples)
    rows = []
    for f in chosen(samples.get("findings"), opts):
        values = [num(v) for v in f.get("values") or []]
        values += [DASH] * (len(labels) - len(values))
        status = f.get("status") or f.get("verdict") or DASH
        rows.append([f.get("id", DASH), f.get("name", DASH)] + values[:len(labels)] + [status])
    return table(["finding", ""] + labels + ["over the samples"], rows)


# ---- recipe population (recipe.json of `scarce recipe population`) ----

def population_size(recipe) -> dict:
    """The one size's result of a population recipe.json (its first size)."""
    best = recipe.get("best") or {}
    return best[sorted(best, key=int)[0]] if best else {}


def ratio(est, epochs, unit: str = "epochs") -> str:
    """An epochs (or FLOPs) ratio with its interval, without an 'x' (it is no data multiple); censored, the bound it
    gives (`epochs`: the population's epochs, or FLOPs, at its last point)."""
    if est.get("censored") == "below":
        share = num(100 * est.get("reached_share", 0), 0)
        spent = num(epochs, 0) if unit == "epochs" else f"{epochs:.3g}"
        return f"not reached within {spent} {unit}: below {num(est['target_epochs'] / epochs, 2)} ({share}% of draws reach it)"
    return interval(est, 2) + (" (at least: reached at the first point)" if est.get("censored") == "above" else "")


def render_population(recipes, labels) -> str:
    sizes = [population_size(r) for r in recipes]
    rows = []
    pick = lambda f: [f(s) if s else DASH for s in sizes]
    rows.append(["population: members, total epochs"] + pick(
        lambda s: f"{s['population_curve'][-1]['members']}, {num(s['population_curve'][-1]['epochs'], 0)}"))
    rows.append(["population val: prior (top K) / uniform logit / uniform prob"] + pick(
        lambda s: f"{num(s['population_curve'][-1]['prior'], 4)} ({s['population_curve'][-1]['prior_k']}) / "
                  f"{num(s['population_curve'][-1]['uniform_logit'], 4)} / {num(s['population_curve'][-1]['uniform_prob'], 4)}"))
    rows.append(["ensemble: members, total epochs"] + pick(
        lambda s: f"{s['independent_curve'][-1]['members']}, {num(s['independent_curve'][-1]['epochs'], 0)}"))
    rows.append(["ensemble val: logit / prob"] + pick(
        lambda s: f"{num(s['independent_curve'][-1]['logit'], 4)} / {num(s['independent_curve'][-1]['prob'], 4)}"))
    last = lambda s: s["population_curve"][-1]["epochs"]
    rows.append(["ensemble epochs / population epochs to reach it, prior [95% val windows]"] + pick(
        lambda s: ratio(s["reach"]["prior"], last(s))))
    rows.append(["the same, uniform logit"] + pick(lambda s: ratio(s["reach"]["logit"], last(s))))
    if any(s.get("reach_flops") for s in sizes):  # recipes run since snapshots record their FLOPs
        rows.append(["ensemble FLOPs / population FLOPs to reach it (a chain's teacher forwards counted), prior"] + pick(
            lambda s: ratio(s["reach_flops"]["prior"], s["population_curve"][-1]["flops"], "FLOPs")
            if s.get("reach_flops") else DASH))
    rows.append(["prior gain at the last point: uniform prob - prior [95%]"] + pick(
        lambda s: interval(s["prior_gain"], 4)))
    rows.append(["prior over population and ensemble: val (top K), the population's weight"] + pick(
        lambda s: f"{num(s['mixture']['prior'], 4)} ({s['mixture']['prior_k']}), {num(s['mixture']['population_weight'], 2)}"))
    return table([""] + labels, rows)


def render_population_curve(recipe, _opts) -> str:
    s = population_size(recipe)
    rows = [["population", q["members"], num(q["epochs"], 0), num(q["uniform_logit"], 4), num(q["uniform_prob"], 4),
             f"{num(q['prior'], 4)} ({q['prior_k']})"] for q in s.get("population_curve") or []]
    rows += [["ensemble", q["members"], num(q["epochs"], 0), num(q["logit"], 4), num(q["prob"], 4), DASH]
             for q in s.get("independent_curve") or []]
    return table(["", "members", "total epochs", "val, uniform logit", "val, uniform prob", "val, prior (top K)"], rows)


def render_ablation(recipe, _opts) -> str:
    """`scarce ablate`'s recipe.json: each comparison's paired difference and data multiple [95%], and its cost."""
    rows = [[c["name"], c["kind"], c["seeds"], num(c["base_loss"], 4), num(c["variant_loss"], 4),
             interval(c["delta"], 4), law_multiple(c["multiple"]), unbounded_multiple(c.get("multiple_empirical"))
             + (" (extrapolated)" if (c.get("multiple_empirical") or {}).get("extrapolated") else ""),
             num(c.get("flops_ratio"), 2), num(c.get("wall_ratio"), 2)] for c in recipe.get("comparisons") or []]
    ref = recipe.get("reference") or {}
    law = (f"Reference law: E {interval(ref.get('E'), 4)}, alpha {interval(ref.get('alpha'), 3)}, "
           f"{len(ref.get('points') or [])} points" + ("; at a bound: its multiples are not identified (n/i)."
                                                        if ref.get("at_bound") else ".") if ref else "")
    return law + "\n\n" + table(["change", "kind", "seeds", "base val", "variant val", "Δ val [95%]",
                                  "data multiple, law [95%]", "data multiple, empirical [95%]", "FLOPs ×", "wall ×"],
                                 rows)


def render_member_recipe(r, _opts) -> str:
    """member_recipe.json (benchmarks/member_recipe.py): every seed's ensembles of each member recipe, each recipe's
    ensembles over the seeds [95%] with their data multiple, and each recipe's paired difference from the first."""
    names, K = r["recipes"], r["members"]
    per_seed = [[s, name, ", ".join(num(x, 4) for x in v["member_val"])] + [num(x, 4) for x in v["val_by_k"]]
                for s in r["seeds"] for name in names for v in [r["per_seed"][str(s)][name]]]
    out = [table(["seed", "members' recipe (epochs x, wd x)", "members' val"]
                 + [f"ensemble val, K={k}" for k in range(1, K + 1)], per_seed)]
    mult = "reference" in r
    levels = [[e["recipe"], e["members"], interval(e["val"], 4)]
              + ([unbounded_multiple(e["multiple_empirical"]) + (" (extrapolated)" if e["multiple_empirical"]
                                                                  ["extrapolated"] else "")] if mult else [])
              for e in r["levels"]]
    out.append(table(["recipe", "K", "val, mean over seeds [95%]"]
                     + (["data multiple, empirical [95%]"] if mult else []), levels))
    diffs = [[f"{c['recipe']} - {c['against']}", c["members"], interval(c["delta"], 4),
              ", ".join(f"{x:+.4f}" for x in c["by_seed"]), "yes" if c["better_on_every_seed"] else "no"]
             for c in r["comparisons"]]
    out.append(table(["recipes", "K", "Δ val [95%]", "by seed", "lower on every seed"], diffs))
    if r.get("asymptotes"):
        rows = [[name, interval(a["E"], 4), num(a["alpha"], 2), interval(a.get("E_minus_first"), 4),
                 "; ".join(a["warnings"]) or DASH] for name, a in r["asymptotes"].items()]
        out.append(table(["recipe", "K-law asymptote E [95%]", "alpha", "E minus the first recipe's [95%]", "fit"],
                         rows))
    return "\n\n".join(out)


def law_multiple(est):
    """The law's multiple, 'n/i (...)' where the law sits at a bound."""
    text = unbounded_multiple(est)
    return text if (est or {}).get("identified", True) else f"n/i ({text})"


def unbounded_multiple(est):
    """A multiple whose upper end may be unbounded (draws below the reference's asymptote): 'inf' there."""
    if isinstance(est, dict) and est.get("value") is not None and est.get("low") is not None \
            and est.get("high") is None:
        return f"{num(est['value'], 2)}x [{num(est['low'], 2)}, inf]"
    return multiple(est)


# ---- blocks ----

SINGLE = {"multiples": render_multiples, "findings": render_findings, "samples": render_samples,
          "sample-findings": render_sample_findings, "population-curve": render_population_curve,
          "ablation": render_ablation, "member-recipe": render_member_recipe}
SIDE_BY_SIDE = {"compare": render_compare, "population": render_population}
KINDS = set(SINGLE) | set(SIDE_BY_SIDE)


def parse_spec(spec: str) -> tuple[str, list[tuple[str, str]], dict]:
    """'PATH... KIND [key=value]...' -> kind, [(path, label)], options. A path may carry '=label'."""
    kind, paths, opts = None, [], {}
    for token in shlex.split(spec):
        path, _, label = token.partition("=")
        if token in KINDS:
            kind = token
        elif path.endswith(".json"):
            paths.append((path, label or Path(path).parent.name or path))
        else:
            opts[path] = label
    if kind is None or not paths:
        raise ValueError(f"render block {spec!r}: needs a kind ({', '.join(sorted(KINDS))}) and a .json path")
    return kind, paths, opts


def render_spec(spec: str, root: Path = RESULTS) -> str:
    kind, paths, opts = parse_spec(spec)
    load = lambda p: json.loads((root / p).read_text())
    if kind in SIDE_BY_SIDE:
        return SIDE_BY_SIDE[kind]([load(p) for p, _ in paths], [label for _, label in paths])
    return SINGLE[kind](load(paths[0][0]), opts)


def render_text(text: str, root: Path = RESULTS) -> str:
    return BLOCK.sub(lambda m: f"{m.group(1)}{render_spec(m.group(2), root)}\n{m.group(4)}", text)


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stale_files(root: Path = RESULTS, write: bool = False) -> list[Path]:
    """The results files whose blocks differ from what their artifacts render; rewritten when `write`."""
    stale = []
    for path in sorted(root.glob("*.md")):
        text = path.read_text()
        new = render_text(text, root)
        if new != text:
            stale.append(path)
            if write:
                write_atomic(path, new)
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any file's blocks are out of date")
    parser.add_argument("--root", type=Path, default=RESULTS, help="the results folder (default: %(default)s)")
    args = parser.parse_args(argv)
    stale = stale_files(args.root, write=not args.check)
    for path in stale:
        print(f"{path}: {'rendered blocks out of date' if args.check else 'rewritten'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
