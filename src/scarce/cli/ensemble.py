"""`scarce ensemble`: train K members (optionally chain-distilled, then distilled into a student) and
evaluate every prefix k = 1..K; or evaluate existing runs or one run's snapshots."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from scarce import atomic
from scarce.cli import options
from scarce.config import ObjectiveConfig
from scarce.device import pick_device
from scarce.errors import UserError
from scarce.recipes.distill import distill_student, seq_distill
from scarce.recipes.ensemble import (
    CHAIN_ALPHA,
    CHAIN_TEMPERATURE,
    SEED_MODES,
    ensemble,
    evaluate_runs,
    prior_report,
    snapshot_ensemble,
)
from scarce.rundir import Member, snapshot_members
from scarce.runs.executors import make_executor

STUDENT = ObjectiveConfig()
"""The --student defaults: the objective section's own, so a student's run id stays what it was."""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "ensemble", help="train K members differing by seed and evaluate every prefix k=1..K",
        description="Train K members that differ by seed (each a normal run in the run store, grouped under an "
                    "ensemble id), or evaluate existing runs (--runs) or one run's snapshots (--snapshots). "
                    "Members are evaluated one at a time, so memory does not grow with K. Writes OUT/ensemble.json "
                    "with every member's val loss and the val loss of the ensemble of the first k members.",
    )
    p.add_argument("--out", required=True, help="ensemble folder: members/ and ensemble.json go here")
    p.add_argument("--combine", choices=["logit", "prob"], default="logit",
                   help="logit: mean of log-probs, renormalised (geometric mean, default); prob: mean of probabilities")
    options.add_results(p)
    options.add_quiet(p)
    members = p.add_argument_group("training members")
    options.add_run_config(members, "each member")
    members.add_argument("--members", type=int, help="number of members K to train")
    options.add_workers(members, "members trained")
    members.add_argument("--seed-mode", choices=SEED_MODES, default="both",
                         help="what the member seed (--seed + k) changes: init and data order (default), init only, "
                              "or data order only")
    members.add_argument("--snapshot-every", type=int, metavar="STEPS",
                         help="instead: train one run keeping a snapshot every STEPS steps and evaluate the snapshots")
    distill = p.add_argument_group("distillation")
    distill.add_argument("--chain-distill", action="store_true",
                         help="member k distills from the frozen member k-1 (one teacher in memory); trains sequentially")
    distill.add_argument("--student", action="store_true",
                         help="also distill the K-member ensemble into one model of the same config")
    distill.add_argument("--seq-student", type=options.parse_count, metavar="TOKENS",
                         help="also train one model on real text mixed with TOKENS tokens sampled from the ensemble "
                              "(sequence-level distillation)")
    distill.add_argument("--synthetic-frac", type=float, default=0.9,
                         help="share of --seq-student batches drawn from the synthetic text (default 0.9)")
    distill.add_argument("--alpha", type=float,
                         help=f"weight of the distillation term; 0 is plain training, 1 ignores the data labels "
                              f"(default {CHAIN_ALPHA:g} for the chain, {STUDENT.alpha:g} for --student)")
    distill.add_argument("--temperature", type=float,
                         help=f"softmax temperature of teacher and student in the KL term (default "
                              f"{CHAIN_TEMPERATURE:g} for the chain, NanoGPT Slowrun's; {STUDENT.temperature:g} "
                              f"for --student)")
    existing = p.add_argument_group("evaluating existing runs")
    existing.add_argument("--runs", nargs="+", metavar="RUN_DIR", help="evaluate these runs instead of training")
    existing.add_argument("--snapshots", nargs="+", metavar="RUN_DIR",
                          help="evaluate the snapshots of these runs instead (a cyclic run's cycle ends: a population)")
    existing.add_argument("--prior", action="store_true",
                          help="also fit mixture weights over the members on select (a learned prior) and report the "
                               "top-K mixture of lowest select loss once on val, beside the uniform average")
    existing.add_argument("--top-k", type=int, nargs="+", default=[], metavar="K",
                          help="the K the prior's top-K mixtures are chosen among (all members always included)")
    existing.add_argument("--eval-tokens", type=int, default=0,
                          help="val tokens to evaluate on (default 0: the whole split)")
    p.set_defaults(func=run)


def run(args) -> int:
    options.check_out(args.out, "--out")
    if args.threads:
        torch.set_num_threads(args.threads)
    log = (lambda *a: None) if args.quiet else print
    device = pick_device(args.device)  # of the evaluations and teachers; training follows train.device
    if args.top_k and not args.prior:
        raise UserError("--top-k chooses among the learned prior's mixtures: add --prior")
    if args.prior and not (args.runs or args.snapshots):
        raise UserError("--prior weighs existing members: give them with --runs or --snapshots")
    if args.runs or args.snapshots:
        if args.runs and args.snapshots:
            raise UserError("give --runs or --snapshots, not both")
        if args.eval_tokens < 0:
            raise UserError(f"--eval-tokens must be >= 0 (0: the whole split), got {args.eval_tokens}")
        members = ([m for run in args.snapshots for m in snapshot_members(run)] if args.snapshots
                   else [Member.of_run(r) for r in args.runs])
        if any(not 1 <= k <= len(members) for k in args.top_k):
            raise UserError(f"--top-k: K must be in 1..{len(members)} (the members), got {args.top_k}")
        fresh = not Path(args.out).exists()
        try:
            report = evaluate_runs(args.out, members, args.combine, args.eval_tokens, device=device)
            if args.prior:
                report["prior"] = prior_report(members, args.top_k, args.eval_tokens, device)
                atomic.write_json(Path(args.out) / "ensemble.json", report)
        except BaseException:
            if fresh:  # leave no half-made ensemble folder behind
                shutil.rmtree(args.out, ignore_errors=True)
            raise
    else:
        report = _train(args, log, device)
    _print_report(report, Path(args.out), log)
    return 0


def _train(args, log, device: str) -> dict:
    if args.members is None and args.snapshot_every is None:
        raise UserError("--members K is required (or --runs / --snapshots to evaluate existing runs)")
    checks = {"--members": args.members is None or args.members >= 1,
              "--alpha": args.alpha is None or 0 <= args.alpha <= 1,
              "--temperature": args.temperature is None or args.temperature > 0,
              "--synthetic-frac": 0 <= args.synthetic_frac <= 1,
              "--snapshot-every": args.snapshot_every is None or args.snapshot_every >= 1}
    for flag, ok in checks.items():
        if not ok:
            raise UserError(f"{flag} is out of range: {getattr(args, flag[2:].replace('-', '_'))}")
    base = options.run_config(args)
    if args.snapshot_every is not None:
        return snapshot_ensemble(base, args.snapshot_every, args.out, args.combine, args.results, args.quiet, device)
    n = options.workers(args)
    executor = make_executor("local", n, threads=1) if n > 1 else None
    report = ensemble(base, args.members, args.out, combine=args.combine, executor=executor, seed_mode=args.seed_mode,
                      chain_distill=args.chain_distill, alpha=_given(args.alpha, CHAIN_ALPHA),
                      temperature=_given(args.temperature, CHAIN_TEMPERATURE), results=args.results,
                      quiet=args.quiet, log=log, device=device)
    teachers = [Path(m["run_dir"]) for m in report["members"]]
    if args.student:
        report["student"] = distill_student(base, teachers, args.out, alpha=_given(args.alpha, STUDENT.alpha),
                                             temperature=_given(args.temperature, STUDENT.temperature),
                                             combine=args.combine, results=args.results, quiet=args.quiet,
                                             device=device)
    if args.seq_student:
        report["seq_student"] = seq_distill(base, teachers, args.out, args.seq_student, args.synthetic_frac,
                                            results=args.results, quiet=args.quiet, device=device)
    if args.student or args.seq_student:
        atomic.write_json(Path(args.out) / "ensemble.json", report)
    return report


def _given(value: float | None, default: float) -> float:
    return default if value is None else value


def _print_report(report: dict, out: Path, log) -> None:
    log(f"{'k':>3} {'member val':>11} {'ensemble val':>13} {'bpb':>7}")
    for k, (m, loss, bpb) in enumerate(zip(report["members"], report["prefix_val_loss"], report["prefix_val_bpb"]), 1):
        log(f"{k:>3} {m['val_loss']:>11.4f} {loss:>13.4f} {bpb:>7.4f}")
    if "seq_student" in report:
        log(f"student trained on ensemble samples: val {report['seq_student']['val_loss']:.4f}")
    if "student" in report:
        log(f"student distilled from the ensemble: val {report['student']['val_loss']:.4f}")
    if "prior" in report:
        p, g = report["prior"], report["prior"]["gain"]
        log(f"learned prior (fitted on select): top {p['k']} of {len(p['members'])} members, val {p['val_loss']:.4f} "
            f"against {p['val_loss_uniform']:.4f} for their uniform probability average (gain {g['value']:+.4f}, "
            f"95% [{g['low']:+.4f}, {g['high']:+.4f}] over val windows)")
    log(f"-> {out / 'ensemble.json'}")
