"""`scarce train`: train one model on a token store, or resume any killed run."""

from __future__ import annotations

from scarce.cli import options
from scarce.errors import UserError
from scarce.runs import launch


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model on a token store (or --resume a run)",
        description="Train one model on a token store and record it in the run store. Any config field can be "
                    "overridden with --set section.field=value (value parsed as JSON, e.g. --set "
                    "optim.weight_decay=1.3 --set model.dropout=0.1 --set init.source=RUN_DIR). --resume continues "
                    "any run (plain, distilled, mixed, snapshot) exactly as it was configured.",
    )
    options.add_run_config(p)
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    options.add_results(p)
    options.add_quiet(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.resume:
        if args.out or args.data:
            raise UserError("--resume takes the run directory alone; drop --out/--data")
        launch.resume(args.resume, args.results, args.quiet)
        return 0
    if not args.out:
        raise UserError("--out RUN_DIR is required (or --resume RUN_DIR)")
    options.check_out(args.out, "--out")
    launch.train(options.run_config(args), args.out, args.results, args.quiet)
    return 0
