"""`scarce eval`: downstream tasks through lm-evaluation-harness (and CORE) for a run or an ensemble."""

from __future__ import annotations

from pathlib import Path

import torch

from scarce import rundir
from scarce.cli import options
from scarce.device import pick_device
from scarce.ensemble import read_ensemble
from scarce.errors import UserError
from scarce.eval import harness
from scarce.eval.nextline import TASK as NEXTLINE
from scarce.rundir import Member, read_config
from scarce.runs.store import RunStore, check_results_root


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval", help="downstream tasks (lm-evaluation-harness) and CORE for a run or an ensemble",
        description="Evaluate a run's select-chosen weights, or an ensemble (its members' combined next-token "
                    f"distribution), on lm-eval tasks over the run's own tokenizer. {NEXTLINE} is the embedded "
                    "task (pick the true next line of Python among 4, from the val split; random baseline 0.25); "
                    "standard tasks (arc_easy, piqa, hellaswag, ...) run when their data is in the Hugging Face "
                    "cache: nothing is downloaded. Prints a table with CORE (partial when not all 22 core tasks "
                    "ran) and writes RUN_DIR/evals/<tasks>.json (or under the ensemble folder).")
    p.add_argument("--run", metavar="RUN_DIR", help="a run directory (its select-chosen weights)")
    p.add_argument("--ensemble", metavar="DIR", help="an ensemble folder with ensemble.json (all its members)")
    p.add_argument("--tasks", required=True, metavar="NAME[,NAME...]",
                   help=f"lm-eval task names, comma-separated ({NEXTLINE}: the embedded task)")
    p.add_argument("--include-path", metavar="DIR", action="append", default=[],
                   help="a folder of your own lm-eval task YAMLs (repeatable)")
    p.add_argument("--limit", type=int, help="at most N items per task (for a quick look; the record says so)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass (default 16)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to run (default auto)")
    p.add_argument("--out", metavar="FILE", help="also write the JSON report here")
    options.add_threads(p, "CPU threads (default: torch's)")
    p.add_argument("--results", help="run store that records the evaluation (default: the one the run, or the "
                                     "ensemble's first member, was recorded in; else $SCARCE_RESULTS or "
                                     "./scarce-results)")
    p.set_defaults(func=run)


def run(args) -> int:
    if bool(args.run) == bool(args.ensemble):
        raise UserError("give --run RUN_DIR or --ensemble DIR (one of them)")
    tasks = harness.parse_tasks(args.tasks)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1 (items per task), got {args.limit}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    options.check_file_out(args.out, "--out")
    device = pick_device(args.device)
    if args.run:
        read_config(args.run)  # a one-line error when it is not a run
        folder, members, combine = Path(args.run), [Member.of_run(args.run)], "logit"
    else:
        folder = Path(args.ensemble)
        members, combine = read_ensemble(folder)
    root = check_results_root(args.results or rundir.results_root_of(members[0].run_dir))  # before the work
    report = harness.evaluate(members, tasks, combine, args.include_path, args.limit, args.batch_size, device)
    path = harness.record_path(folder, tasks, args.limit)
    harness.write_report(report, path)
    if args.out:
        harness.write_report(report, args.out)
    store = RunStore(root)
    try:
        store.record_eval(folder, tasks, args.limit, path, report)
    finally:
        store.close()
    print(harness.table(report))
    print(f"-> {path}" + (f" and {args.out}" if args.out else ""))
    return 0
