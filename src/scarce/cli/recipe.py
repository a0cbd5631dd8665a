"""`scarce recipe NAME`: run a named recipe (standard, regularized, ensemble, ...) as sweeps."""

from __future__ import annotations

import json

from scarce.cli import options
from scarce.cli.sweep import add_point_options
from scarce.config import parse_assignments
from scarce.recipes import RECIPES, run_recipe


def add_parser(sub) -> None:
    r = sub.add_parser(
        "recipe", help="run a named recipe (standard, regularized, ensemble, joint, isoflop, ...) as sweeps",
        description="Run a named recipe on a token store: it generates sweeps, runs them (resumably) and "
                    "writes its selection (best configs, certificates) as JSON to OUT/recipe.json.")
    r.add_argument("name", choices=sorted(RECIPES), help="recipe name")
    r.add_argument("--data", required=True, help="token store made by `scarce prepare`")
    r.add_argument("--sizes", type=int, nargs="+", help="model depths (the size dial); default 2 4 6")
    r.add_argument("--out", required=True, help="folder for the run directories and recipe.json")
    r.add_argument("--preset", default="tiny", help="base preset (default tiny)")
    options.add_set(r, " in every run")
    r.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="a recipe option (see docs/recipes.md), e.g. members=4, budgets=[1e12,3e12] (repeatable)")
    add_point_options(r)
    r.set_defaults(func=run)


def run(args) -> int:
    options.use_tracker(args)
    options.check_out(args.out, "--out")
    recipe_options = {k.replace("-", "_"): v for k, v in parse_assignments(args.options, "--option").items()}
    result = run_recipe(args.name, args.data, args.out, sizes=args.sizes, preset=args.preset,
                        overrides=parse_assignments(args.overrides, "--set"),
                        execution=options.execution(args).held(options.workers(args), args.threads or 0),
                        retry_failed=args.retry_failed, **recipe_options)
    print(json.dumps(result, indent=1, default=str))
    return 0
