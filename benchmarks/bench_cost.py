"""Where a bench's training time went, by stage, and what branching saved: a table from its run folders.

For each stage (`tags.stage`) of the runs a `scarce bench` call lists in bench.json (or every sample's, for a
`--samples` folder): runs, how many started from another run's stable-phase checkpoint (branched), the
process-minutes and tokens they trained themselves, and the same as `--no-branch` would have trained them (each run
from step 0: its own wall seconds plus those it inherited, timed once in the run it branched from). Val and select
evaluation time is shown apart (part of the process-minutes). Reads summaries only; trains nothing.

    python benchmarks/bench_cost.py OUT [OUT ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from scarce import rundir


def run_folders(out: Path) -> list[Path]:
    """The run folders of the bench (or every sample's) written to `out`, from the run ids its bench.json lists."""
    benches = [out / "bench.json"] if (out / "bench.json").is_file() else sorted(out.glob("sample-*/bench.json"))
    if not benches:
        sys.exit(f"{out}: no bench.json (nor sample-*/bench.json): not a `scarce bench` folder")
    folders = []
    for b in benches:
        ids = set(json.loads(b.read_text())["run_ids"])
        folders += [s.parent for s in sorted(b.parent.glob(f"runs/**/{rundir.SUMMARY}"))
                    if json.loads(s.read_text()).get("run_id") in ids]
    return folders


def cost_rows(folders: list[Path]) -> dict[str, dict]:
    rows: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for f in folders:
        s = json.loads((f / rundir.SUMMARY).read_text())
        stage = json.loads((f / rundir.CONFIG).read_text()).get("tags", {}).get("stage", "-")
        inherited = s.get("branched_from") or {}
        shared = inherited.get("step", 0) / max(s.get("steps") or 1, 1)
        r = rows[stage]
        r["runs"] += 1
        r["branched"] += bool(inherited)
        r["own_min"] += rundir.own_seconds(s) / 60
        r["alone_min"] += (s.get("wall_seconds") or 0.0) / 60
        r["own_mtok"] += (s.get("tokens_seen") or 0) * (1 - shared) / 1e6
        r["alone_mtok"] += (s.get("tokens_seen") or 0) / 1e6
        r["eval_min"] += (s.get("eval_seconds") or 0.0) / 60
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="+", type=Path, help="a `scarce bench --out` folder")
    args = ap.parse_args()
    cols = ("runs", "branched", "own_min", "alone_min", "own_mtok", "alone_mtok", "eval_min")
    head = ("stage", "runs", "branched", "process-min", "--no-branch", "Mtokens", "--no-branch", "eval min")
    for out in args.out:
        rows = cost_rows(run_folders(out))
        total = {c: sum(r[c] for r in rows.values()) for c in cols}
        print(f"\n{out}")
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for name, r in [*sorted(rows.items()), ("**all**", total)]:
            print(f"| {name} | {int(r['runs'])} | {int(r['branched'])} | {r['own_min']:.1f} | {r['alone_min']:.1f} | "
                  f"{r['own_mtok']:.2f} | {r['alone_mtok']:.2f} | {r['eval_min']:.1f} |")
        if total["alone_min"]:
            print(f"branching: {total['own_min'] / total['alone_min']:.2f} of the process-minutes, "
                  f"{total['own_mtok'] / max(total['alone_mtok'], 1e-9):.2f} of the tokens")


if __name__ == "__main__":
    main()
