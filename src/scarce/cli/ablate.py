"""`scarce ablate`: each change to a recipe as a paired val difference and a data multiple, over seeds."""

from __future__ import annotations

from pathlib import Path

from scarce.cli import options
from scarce.cli.sweep import add_point_options
from scarce.config import parse_assignments
from scarce.recipes import run_recipe
from scarce.recipes.ablate import MODES, STACKS
from scarce.report.ablation import write_report


def add_parser(sub) -> None:
    p = sub.add_parser(
        "ablate", help="what each change to a recipe is worth: paired val difference and data multiple, over seeds",
        description="Train a baseline (--preset and --set) and each --change over --seeds seeds (paired: seed s of "
                    "every config sees the same data order), then report each change's paired val difference and its "
                    "data multiple against a reference law of the standard recipe, with 95%% intervals over val "
                    "windows, seeds and the law, and its cost in FLOPs and wall time: OUT/recipe.json, OUT/ablate.csv, "
                    "OUT/report.md, OUT/plots/ablation.png. Resumable: rerun the same command after a kill.")
    p.add_argument("--data", required=True, help="token store made by `scarce prepare` (the budget)")
    p.add_argument("--out", required=True, help="folder for the run directories, recipe.json and the report")
    p.add_argument("--change", dest="changes", action="append", default=[], required=True,
                   metavar="NAME:FIELD=VALUE[,FIELD=VALUE]",
                   help=f"a change (repeatable); NAME:@STACK names a stack of fields ({', '.join(sorted(STACKS))})")
    p.add_argument("--mode", choices=MODES, default="add",
                   help="add: each change alone on the baseline (and all stacked); remove: each taken out of the "
                        "stack of all; both (default add)")
    p.add_argument("--no-stack", action="store_true",
                   help="mode add: leave out the stack of all changes (changes that set one field differently may then "
                        "be given together)")
    p.add_argument("--seeds", type=options.positive_int, default=3, help="seeds per config (default 3)")
    p.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference", metavar="RESULTS",
                     help="a run store (results root) holding the standard runs of `scarce bench` on this val split: "
                          "the reference law is fitted to the run best on select per size of data")
    ref.add_argument("--reference-data", nargs="+", metavar="STORE",
                     help="larger token stores with this store's val split: the baseline is trained once on each and "
                          "the law fitted to those points and the baseline's own")
    p.add_argument("--reference-depth", type=options.positive_int, default=0,
                   help="the depth of the reference runs, where the run store holds several")
    p.add_argument("--boot", type=options.count_or_zero, default=1000, help="bootstrap draws (default 1000)")
    p.add_argument("--preset", default="tiny", help="base preset of the baseline (default tiny)")
    options.add_set(p, " in every run (the baseline)")
    add_point_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    options.use_tracker(args)
    options.check_out(args.out, "--out")
    options.check_seed(args.seed, "--seed")
    result = run_recipe("ablate", args.data, args.out, preset=args.preset,
                        overrides=parse_assignments(args.overrides, "--set"),
                        execution=options.execution(args).held(options.workers(args), args.threads or 0),
                        retry_failed=args.retry_failed, changes=args.changes, seeds=args.seeds, seed=args.seed,
                        reference=args.reference or "", reference_data=args.reference_data or [],
                        reference_depth=args.reference_depth, n_boot=args.boot, mode=args.mode,
                        stack=not args.no_stack)
    report = write_report(result, args.out)
    print(Path(report).read_text())
    return 0
