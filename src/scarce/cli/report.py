"""`scarce report`: render a report (md, html, plots, csv) from the runs in the run store."""

from __future__ import annotations

from scarce.cli import options
from scarce.errors import UserError
from scarce.report.report import report
from scarce.runs.store import check_results_root


def add_parser(sub) -> None:
    r = sub.add_parser("report", help="render a report (md, html, plots, csv) from runs in the run store",
                       description="Write OUT/report.md, OUT/report.html, OUT/plots/*.png and OUT/tables/*.csv "
                                   "from the finished runs in the run store (all of them, or one sweep's): tables, "
                                   "training curves, val loss against each swept setting, loss against compute, "
                                   "data scaling; --compare draws chosen runs side by side.")
    r.add_argument("--sweep", help="only the runs of this sweep")
    r.add_argument("--compare", nargs="+", metavar="RUN", help="finished runs (ids in the run store, or run "
                   "folders) drawn side by side, with the settings that differ")
    r.add_argument("--out", required=True, help="report folder")
    options.add_results(r)
    r.set_defaults(func=run)


def run(args) -> int:
    options.check_out(args.out, "--out")
    root = check_results_root(args.results)
    if not (root / "runs.db").is_file() and not args.compare:  # nothing to report: no empty run store is made
        where = f" of sweep {args.sweep!r}" if args.sweep else ""
        raise UserError(f"no finished runs{where} in the run store: {root} holds no runs.db; train some "
                        "(scarce train / sweep / bench) first, or pass --results")
    path = report(args.out, args.results, args.sweep, args.compare)
    print(f"report: {path.with_suffix('.html')} ({path})")
    return 0
