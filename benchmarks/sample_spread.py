"""How far a bench's headline moves with the data sample, against its own intervals.

    python benchmarks/sample_spread.py DIR [DIR...]

Each DIR holds sample-K/bench.json (what `scarce bench --samples` writes). Per DIR: each sample's default multiple
(parametric and empirical) with its interval, how many of the ordered pairs of samples have one sample's interval
covering the other's point (an interval that covers what it claims, the data sample included, covers most of
them), the between-sample spread (max/min of the points, and the sd of their logs), and the reference's slope:
val loss falling per e-fold of data, (L(1x) - L(largest)) / ln(largest multiple).
"""

from __future__ import annotations

import argparse
import json
import math
from itertools import permutations
from pathlib import Path


def spread(folder: Path) -> dict:
    samples = [json.loads(p.read_text()) for p in sorted(folder.glob("sample-*/bench.json"))]
    if len(samples) < 2:
        raise SystemExit(f"error: {folder} holds fewer than 2 sample-*/bench.json")
    out = {"folder": str(folder), "samples": len(samples), "default": samples[0]["default_recipe"]}
    for kind in ("parametric", "empirical"):
        es = [s["efficiency"][kind] for s in samples]
        points = [e["value"] for e in es]
        covered = sum(es[i]["low"] is not None and es[i]["high"] is not None and es[i]["low"] <= points[j] <= es[i]["high"]
                      for i, j in permutations(range(len(es)), 2))
        logs = [math.log(v) for v in points]
        mean = sum(logs) / len(logs)
        out[kind] = {"per_sample": [(e["value"], e["low"], e["high"]) for e in es],
                     "covered": f"{covered} of {len(es) * (len(es) - 1)}", "max_over_min": max(points) / min(points),
                     "log_sd": math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1)),
                     "mean_width": sum(e["high"] - e["low"] for e in es if e["high"] is not None) / len(es)}
    slopes = []
    for s in samples:
        ref = sorted(s["reference"], key=lambda r: r["multiple"])
        slopes.append((ref[0]["val_loss"] - ref[-1]["val_loss"]) / math.log(ref[-1]["multiple"] / ref[0]["multiple"]))
    out["reference_slope"] = slopes
    return out


def _interval(v) -> str:
    value, low, high = v
    end = lambda x: "inf" if x is None else f"{x:.2f}"
    return f"{value:.2f}x [{end(low)}, {end(high)}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    args = ap.parse_args()
    print("| samples | multiple | per sample | pairs covering the other's point | max/min | sd of log | "
          "mean width | reference slope (nats per e-fold) |")
    print("|---|---|---|---|---|---|---|---|")
    for d in args.dirs:
        s = spread(d)
        for kind in ("parametric", "empirical"):
            k = s[kind]
            print(f"| {d} | {s['default']} {kind} | {', '.join(_interval(v) for v in k['per_sample'])} | "
                  f"{k['covered']} | {k['max_over_min']:.2f} | {k['log_sd']:.3f} | {k['mean_width']:.2f}x | "
                  f"{', '.join(f'{x:.3f}' for x in s['reference_slope'])} |")


if __name__ == "__main__":
    main()
