"""`scarce sweep SPEC` and `scarce recipe NAME`: run a declared sweep, or a named recipe as sweeps."""

from __future__ import annotations

import json

from scarce.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a sweep spec (resumable: done points are skipped)",
        description="Run every point of a sweep spec (TOML, or a Python function as file.py:name) that is not "
                    "done yet. Each point is a run keyed by its config hash; a killed sweep resumes where it "
                    "stopped; failed points are retried only with --retry-failed.")
    p.add_argument("spec", help="sweep spec: a .toml file, or file.py:function / module:function")
    _executor_options(p)
    p.set_defaults(func=run_sweep_command)

    r = sub.add_parser(
        "recipe", help="run a named recipe (standard, regularized, ensemble, joint, isoflop, ...) as sweeps",
        description="Run a named recipe on a token store: it generates sweeps, runs them (resumably) and "
                    "writes its selection (best configs, certificates) as JSON to OUT/recipe.json.")
    from scarce.recipes import RECIPES

    r.add_argument("name", choices=sorted(RECIPES), help="recipe name")
    r.add_argument("--data", required=True, help="token store made by `scarce prepare`")
    r.add_argument("--sizes", type=int, nargs="+", help="model depths (the size dial); default 2 4 6")
    r.add_argument("--out", required=True, help="folder for the run directories and recipe.json")
    r.add_argument("--preset", default="tiny", help="base preset (default tiny)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field in every run, e.g. train.batch_size=8 (repeatable)")
    r.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="a recipe option (see docs/recipes.md), e.g. members=4, budgets=[1e12,3e12] (repeatable)")
    _executor_options(r)
    r.set_defaults(func=run_recipe_command)


def _executor_options(p) -> None:
    p.add_argument("--workers", type=int, default=1, help="points at once on this machine (threads split)")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="local processes or Ray tasks")
    p.add_argument("--ray-address", help="address of an existing Ray cluster (default: start a local instance)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per point (default: cores / workers)")
    p.add_argument("--retry-failed", action="store_true", help="run failed points again")
    p.add_argument("--results", help="results root holding runs.db (default $SCARCE_RESULTS or ./scarce-results)")


def _executor(args):
    from scarce.runs.executors import make_executor

    return make_executor(args.executor, args.workers, args.ray_address, args.threads)


def run_sweep_command(args) -> int:
    from scarce.runs.sweep import run_sweep

    report = run_sweep(args.spec, _executor(args), args.retry_failed, args.results)
    print(f"sweep {report.name}: {len(report.ran)} ran, {len(report.skipped)} already done, "
          f"{len(report.failed)} failed")
    return 1 if report.failed else 0


def _parse_options(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option {item!r} is not of the form KEY=VALUE")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def run_recipe_command(args) -> int:
    from scarce.recipes import run_recipe

    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r} is not of the form FIELD=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    result = run_recipe(args.name, args.data, args.out, sizes=args.sizes, preset=args.preset, overrides=overrides,
                        executor=_executor(args), retry_failed=args.retry_failed, results=args.results,
                        **_parse_options(args.options))
    print(json.dumps(result, indent=1, default=str))
    return 0
