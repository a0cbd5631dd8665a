"""`scarce bench`: the data efficiency of a recipe over the standard recipe, end to end, with a report."""

from __future__ import annotations

from pathlib import Path

from scarce.bench import BENCH_PRESETS, BENCH_RECIPES, DEFAULT_RECIPE, BenchResult, bench
from scarce.bench.report import verdict_of
from scarce.bench.samples import bench_samples
from scarce.cli import options
from scarce.errors import UserError
from scarce.report.report import interval


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="measure a recipe's data efficiency over the standard recipe, with a report",
        description="Train the standard recipe at several data sizes (the reference law), the recipe on the fixed "
                    "budget (regularized settings chosen on select, then an ensemble), fit the data efficiency with "
                    "95%% intervals, and write OUT/bench.json, OUT/report.md, OUT/report.html, OUT/plots/*.png and "
                    "OUT/tables/*.csv. Every run is resumable: rerun the same command after a kill.",
    )
    p.add_argument("--data", help="token store to cut the reference sizes from (its train split is the largest size; "
                                  "default: the preset's budget of the embedded corpus, prepared under OUT/stores)")
    p.add_argument("--preset", default="cpu-tiny",
                   help=f"budget (default cpu-tiny; one of {', '.join(BENCH_PRESETS)})")
    p.add_argument("--recipe", default=DEFAULT_RECIPE,
                   help="; ".join(f"{k}: {v}" for k, v in BENCH_RECIPES.items()))
    p.add_argument("--out", required=True, help="folder for bench.json, the report, run folders and token stores")
    p.add_argument("--data-seed", type=int, default=0, metavar="N",
                   help="another sample of the preset's corpus (`scarce prepare --seed N`), prepared under "
                        "OUT/stores/seed-N: repeating the bench over seeds shows how much the documents drawn move "
                        "the multiples (default 0)")
    p.add_argument("--samples", type=options.positive_int, metavar="S",
                   help="the bench on S samples of the preset's corpus (data seeds 0..S-1, each in OUT/sample-N) and "
                        "one report whose headline interval covers the sample (random effects over the samples)")
    options.add_device_cost(p)
    options.add_no_branch(p)
    options.add_executor(p, "runs trained")
    options.add_results(p)
    options.add_tracker(p)
    p.set_defaults(func=run)


def run(args) -> int:
    options.use_tracker(args)
    options.check_out(args.out, "--out")
    execution = options.execution(args, options.device_cost(args))
    if args.samples is not None:
        if args.data:
            raise UserError("--samples draws samples of the preset's corpus; a store given with --data is one "
                            "sample (prepare others with `scarce prepare --seed N`)")
        if args.data_seed:
            raise UserError("--samples runs data seeds 0..S-1 itself; leave out --data-seed")
        combined = bench_samples(args.out, args.preset, args.samples, args.recipe, execution)
        print_samples(combined)
        return 0
    if args.data and args.data_seed:  # (prepare checks the seed itself)
        raise UserError("--data-seed draws another sample of the preset's corpus; with --data the store is given: "
                        "prepare it with `scarce prepare --seed N` instead")
    print_summary(bench(args.out, args.preset, args.data or args.data_seed, args.recipe, execution))
    return 0


def print_samples(combined: dict) -> None:
    for kind, c in (combined["headline"] or {}).items():
        if c.get("value") is None:
            print(f"{combined['default_recipe']} {kind}: {c.get('note')}")
            continue
        one_more = ("" if c["prediction_low"] is None else
                    f"; one more sample: [{c['prediction_low']:.2f}, {c['prediction_high']:.2f}]")
        print(f"{combined['default_recipe']} {kind} over {combined['samples']} samples: {c['value']:.2f}x "
              f"[{c['low']:.2f}, {c['high']:.2f}]{one_more}; per sample "
              + ", ".join(f"{v:.2f}x" for v in c["values"]))
    print(f"report: {Path(combined['report']).with_suffix('.html')}")


def print_summary(result: BenchResult) -> None:
    rows = [("recipe", "val loss", "bits/byte", "data efficiency [95% CI]", "empirical [95% CI]", "compute")]
    for name, r in result.recipes.items():
        e = r["efficiency"]
        rows.append((name + (" *" if name == result.default_recipe else ""), f"{r['val_loss']:.4f}",
                     "-" if r["val_bpb"] is None else f"{r['val_bpb']:.4f}", interval(e.get("parametric")),
                     interval(e.get("empirical")) + (" (disagree)" if r.get("disagree") else ""),
                     "-" if r["flops"] is None else f"{r['flops']:.3g} FLOPs"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"\nscarce bench {result.preset}: budget {result.budget_tokens:,} unique train tokens, "
          f"{len(result.run_ids)} runs in {result.wall_seconds / 60:.1f} min (* = default recipe)")
    for row in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)))
    iv = result.intervals or {}
    if iv:
        print(f"  intervals cover {', '.join(iv.get('covers', []))}; not {', '.join(iv.get('leaves_out', []))}")
    for w in result.warnings:
        print(f"  warning: {w}")
    if result.smoke:
        print("findings (smoke test: too small to mean anything):")
    for f in result.findings:
        value = "" if f["value"] is None else f": {f['value']:.4g} [{_end(f['low'])}, {_end(f['high'])}] {f['unit']}"
        print(f"  {f['id']:>6} {verdict_of(f):<15} {f['name']}{value}")
    print(f"report: {Path(result.out) / 'report.html'} ({result.report})")


def _end(v) -> str:
    return "-" if v is None else f"{v:.4g}"
