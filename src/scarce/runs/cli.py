"""`scarce runs`: list the run store."""

from __future__ import annotations

import json

COLUMNS = [("id", 16), ("status", 7), ("preset", 10), ("sweep", 12), ("val_loss", 9), ("val_bpb", 8),
           ("params", 10), ("tokens_seen", 12), ("wall_seconds", 8), ("run_dir", 0)]


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list runs in the run store",
                       description="List the runs recorded in the run store (finished, failed and running).")
    p.add_argument("--results", help="results root holding runs.db (default $SCARCE_RESULTS or ./scarce-results)")
    p.add_argument("--sweep", help="only runs of this sweep")
    p.add_argument("--status", choices=["done", "failed", "running"], help="only runs with this status")
    p.add_argument("--group", help="only runs of this ensemble group")
    p.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                   help="only runs whose resolved config has FIELD=VALUE, e.g. model.depth=4 (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON (a list of rows) for scripts")
    p.set_defaults(func=run)


def run(args) -> int:
    from scarce.errors import UserError
    from scarce.runs.store import RunStore

    where = {}
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--where {item!r} is not of the form FIELD=VALUE")
        try:
            where[key] = json.loads(value)
        except json.JSONDecodeError:
            where[key] = value
    store = RunStore(args.results)
    rows = store.list(sweep=args.sweep, status=args.status, group=args.group, where=where)
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    print(format_table(rows))
    return 0


def format_table(rows: list[dict]) -> str:
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
