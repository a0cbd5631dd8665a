"""Ensembles of self-distilled students against ensembles of their teachers, on a finished bench's run store.

Each member of the bench's ensemble at a size teaches a student of its own size, with the settings of the
bench's own self-distilled student (alpha, temperature, epochs, seed + member index); the students'
ensemble, the teachers' and all of them together are evaluated on val, and each is turned into a data
efficiency multiple with the bench's reference law L(D) = E + A·D^-alpha.

    python benchmarks/selfdistill_ensemble.py --bench OUT [--depth D] [--workers 2]

OUT is a `scarce bench` output folder whose distillation ran (bench.json names the self-distilled student). The
students are trained into OUT/selfdistill-ensemble/ (resumable: a finished student is reused).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from scarce.data.store import open_store
from scarce.ensemble import evaluate_ensemble
from scarce.rundir import Member, read_config, read_summary
from scarce.runs.launch import train
from scarce.scaling.paired import loss_difference


def _student(self_run: str, teacher: str, seed: int, run_dir: str, results: str) -> float:
    torch.set_num_threads(1)
    if (Path(run_dir) / "summary.json").exists():
        return read_summary(run_dir)["val_loss"]
    cfg = read_config(self_run)
    cfg = dataclasses.replace(cfg, objective=dataclasses.replace(cfg.objective, teachers=[teacher]),
                              train=dataclasses.replace(cfg.train, seed=seed, threads=1),
                              tags={**cfg.tags, "member": f"self-seed{seed}", "sweep": "selfdistill-ensemble"})
    return train(cfg, run_dir, results=results, quiet=True)["val_loss"]


def _run_dir(bench: Path, run_id: str) -> Path:
    return next((bench / "runs").glob(f"*/{run_id}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, type=Path, help="a scarce bench output folder")
    ap.add_argument("--depth", type=int, help="the ensemble's size (default: the bench's default ensemble)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    result = json.loads((args.bench / "bench.json").read_text())
    ensemble = result["ensembles"][str(args.depth)] if args.depth else result["ensemble"]
    teachers = [Member.of_run(_run_dir(args.bench, i)) for i in ensemble["member_ids"]]
    self_run = _run_dir(args.bench, result["distillation"]["self"]["run_id"])  # the bench's, taught by member 0
    seed0 = read_config(self_run).train.seed
    out = args.bench / "selfdistill-ensemble"
    jobs = [(str(self_run), str(t.run_dir), seed0 + i, str(out / f"student-{i}"), str(out / "results"))
            for i, t in enumerate(teachers) if i]
    with ProcessPoolExecutor(args.workers) as pool:
        losses = [read_summary(self_run)["val_loss"], *pool.map(_student, *zip(*jobs))]
    students = [Member.of_run(self_run)] + [Member.of_run(j[3]) for j in jobs]
    law = result["fits"]["reference"]["estimates"]
    a, e, alpha = law["A"]["value"], law["E"]["value"], law["alpha"]["value"]
    budget = result["budget_tokens"]
    cfg = read_config(teachers[0].run_dir)
    store = open_store(cfg.data)
    torch.set_num_threads(args.workers)
    print(f"# bench {args.bench} | depth {cfg.model.depth} | {len(teachers)} teachers | students' val: "
          + ", ".join(f"{x:.4f}" for x in losses))
    print("| ensemble | members' val | prefix val (k = 1..K) | multiple of the full ensemble |\n|---|---|---|---:|")
    windows = {}
    for name, members in (("teachers", teachers), ("self-distilled students", students),
                          ("teachers + students", teachers + students)):
        with tempfile.TemporaryDirectory() as tmp:
            r = evaluate_ensemble(members, store.split("val"), store.token_bytes(), cfg.model.seq_len, cache_dir=tmp)
        windows[name] = r["prefix_window_nll"][-1]
        multiple = (a / (r["prefix_loss"][-1] - e)) ** (1 / alpha) / budget
        print(f"| {name} | {', '.join(f'{x:.4f}' for x in r['member_loss'])} | "
              f"{', '.join(f'{x:.4f}' for x in r['prefix_loss'])} | {multiple:.2f}x |")
    d = loss_difference(windows["teachers"], windows["self-distilled students"], cfg.model.seq_len)
    print(f"\nteachers' ensemble - students' ensemble, paired on val windows: {d['value']:+.4f} "
          f"[{d['low']:+.4f}, {d['high']:+.4f}] nats (SE {d['se']:.4f})")


if __name__ == "__main__":
    main()
