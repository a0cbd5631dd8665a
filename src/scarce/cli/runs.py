"""`scarce runs`: list the run store."""

from __future__ import annotations

import json

from scarce.cli import options
from scarce.config import parse_assignments
from scarce.recipes.crossing import find_crossings
from scarce.runs.export import check_csv_path, write_curves_csv, write_runs_csv
from scarce.runs.store import STATUSES, RunRow, RunStore

COLUMNS = [("id", 16), ("status", 11), ("preset", 10), ("sweep", 12), ("val_loss", 9), ("val_bpb", 8),
           ("params", 10), ("tokens_seen", 12), ("wall_seconds", 8), ("run_dir", 0)]


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list runs in the run store",
                       description="List the runs recorded in the run store (finished, failed and running).")
    options.add_results(p)
    p.add_argument("--sweep", help="only runs of this sweep")
    p.add_argument("--status", choices=STATUSES, help="only runs with this status")
    p.add_argument("--group", help="only runs of this ensemble group")
    p.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                   help="only runs whose resolved config has FIELD=VALUE, e.g. model.depth=4 (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON (a list of rows) for scripts")
    p.add_argument("--crossings", action="store_true",
                   help="check the listed runs for val-loss curves of a larger model above a smaller one at equal "
                        "tokens (per sweep and token store, each size's best-on-select run); with --json print "
                        "the crossings instead of the rows")
    p.add_argument("--csv", metavar="FILE", help="write the finished runs as a CSV table for `scarce fit` "
                   "(columns: id, sweep, group, preset, depth, params, non_embedding_params, train_tokens, "
                   "tokens_seen, epochs, flops, val_loss, val_bpb, select_loss)")
    p.add_argument("--curves", metavar="FILE", help="write every evaluation of the finished runs as a CSV "
                   "(id, params, tokens, flops, select_loss, val_loss): the training curves for Chinchilla approach 1")
    p.set_defaults(func=run)


def run(args) -> int:
    where = parse_assignments(args.where, "--where")
    for path in (args.csv, args.curves):
        if path:
            check_csv_path(path)  # before the run store is opened (and made, when it is new)
    store = RunStore(args.results)
    try:
        rows = store.list(sweep=args.sweep, status=args.status, group=args.group, where=where)
    finally:
        store.close()
    if args.crossings:
        return print_crossings(rows, args.json)
    if args.csv or args.curves:
        done = [r for r in rows if r.status == "done"]
        if args.csv:
            print(f"{write_runs_csv(done, args.csv)} runs -> {args.csv}")
        if args.curves:
            print(f"{write_curves_csv(done, args.curves)} evaluations -> {args.curves}")
        return 0
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1, default=str))
        return 0
    print(format_table(rows))
    return 0


def format_table(rows: list[RunRow]) -> str:
    head = " ".join(name.ljust(w) if w else name for name, w in COLUMNS)
    lines = [head]
    for r in rows:
        cells = []
        for name, w in COLUMNS:
            v = r.get(name)
            if isinstance(v, float):
                v = f"{v:.4f}" if name != "wall_seconds" else f"{v:.0f}"
            cells.append(str("" if v is None else v)[: w or None].ljust(w) if w else str(v))
        lines.append(" ".join(cells))
    lines.append(f"{len(rows)} run(s)")
    return "\n".join(lines)


def print_crossings(rows: list[dict], as_json: bool) -> int:
    found = find_crossings(rows)
    if as_json:
        print(json.dumps(found, indent=1))
        return 0
    for c in found:
        print(f"crossing: {c['larger']} ({c['larger_params']:,} params) lies {c['excess']:.4f} nats above "
              f"{c['smaller']} ({c['smaller_params']:,} params) at {c['tokens']:,.0f} tokens [{c['family']}]")
    print(f"{len(found)} crossing(s) among {len(rows)} run(s)")
    return 0
