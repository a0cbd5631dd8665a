"""`scarce ensemble` (train K members, evaluate every prefix) and `scarce sample` (generate text)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scarce.errors import UserError


def add_parser(sub) -> None:
    from scarce.config import PRESETS

    p = sub.add_parser(
        "ensemble", help="train K members differing by seed and evaluate every prefix k=1..K",
        description="Train K members that differ by seed (each a normal run in the run store, grouped under an "
                    "ensemble id), or evaluate existing runs (--runs) or one run's snapshots (--snapshots). "
                    "Members are evaluated one at a time, so memory does not grow with K. Writes OUT/ensemble.json "
                    "with every member's val loss and the val loss of the ensemble of the first k members.",
    )
    p.add_argument("--data", help="token store folder made by `scarce prepare`")
    p.add_argument("--preset", default="tiny", help=f"config of each member (default tiny; one of {', '.join(PRESETS)})")
    p.add_argument("--members", type=int, help="number of members K to train")
    p.add_argument("--out", required=True, help="ensemble folder: members/ and ensemble.json go here")
    p.add_argument("--combine", choices=["logit", "prob"], default="logit",
                   help="logit: mean of log-probs, renormalised (geometric mean, default); prob: mean of probabilities")
    p.add_argument("--workers", type=int, default=1, help="members trained in parallel, as 1-thread processes")
    p.add_argument("--seed", type=int, default=0, help="base seed; member k uses seed + k (default 0)")
    p.add_argument("--seed-mode", choices=["both", "init", "data"], default="both",
                   help="what the member seed changes: init and data order (default), init only, or data order only")
    p.add_argument("--chain-distill", action="store_true",
                   help="member k distills from the frozen member k-1 (one teacher in memory); trains sequentially")
    p.add_argument("--student", action="store_true",
                   help="also distill the K-member ensemble (logit average) into one model of the same config")
    p.add_argument("--seq-student", type=int, metavar="TOKENS",
                   help="also train one model on real text mixed with TOKENS tokens sampled from the ensemble "
                        "(sequence-level distillation)")
    p.add_argument("--synthetic-frac", type=float, default=0.9,
                   help="share of --seq-student batches drawn from the synthetic text (default 0.9)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term (default 0.5)")
    p.add_argument("--temperature", type=float, default=2.0, help="distillation softmax temperature (default 2)")
    p.add_argument("--epochs", type=float, help="horizon of each member in epochs over the train split")
    p.add_argument("--tokens", type=float, help="horizon of each member in training tokens")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a member config field, e.g. optim.weight_decay=0.5 (repeatable)")
    p.add_argument("--threads", type=int, help="CPU threads of this process (parallel workers always use 1)")
    p.add_argument("--runs", nargs="+", metavar="RUN_DIR", help="evaluate these existing runs instead of training")
    p.add_argument("--snapshots", metavar="RUN_DIR", help="evaluate the snapshot checkpoints of one run instead")
    p.add_argument("--snapshot-every", type=int, metavar="STEPS",
                   help="train one run keeping a snapshot every STEPS steps and evaluate the snapshots as the ensemble")
    p.add_argument("--eval-tokens", type=int, default=0, help="with --runs/--snapshots: val tokens to evaluate on (default 0: the whole split)")
    p.add_argument("--results", help="results root holding runs.db (default $SCARCE_RESULTS or ./scarce-results)")
    p.add_argument("--quiet", action="store_true", help="no training log lines")
    p.set_defaults(func=run_ensemble)

    s = sub.add_parser("sample", help="generate text from a run or an ensemble",
                       description="Sample unconditional text (starting after an end-of-text token) from a run's "
                                   "best-on-select weights, or from the logit-averaged ensemble of several runs.")
    s.add_argument("--run", nargs="+", metavar="RUN_DIR", help="run directory (several: sample from their ensemble)")
    s.add_argument("--ensemble", metavar="DIR", help="an ensemble folder with ensemble.json (all its members)")
    s.add_argument("--tokens", type=int, default=200, help="tokens to generate (default 200)")
    s.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; 0 is greedy (default 1)")
    s.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens; 0 means all (default)")
    s.add_argument("--seed", type=int, default=0, help="seed of the sampler (default 0)")
    s.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    s.add_argument("--store-out", metavar="DIR",
                   help="write the samples as the train split of a token store (the run's tokenizer, select and "
                        "val) instead of printing: synthetic data for sequence-level distillation")
    s.add_argument("--streams", type=int, default=64, help="with --store-out: rows sampled in parallel (default 64)")
    s.set_defaults(func=run_sample)


def _member_config(args):
    from scarce.train.cli import build_config

    ns = argparse.Namespace(preset=args.preset, config=None, overrides=list(args.overrides), seed=args.seed,
                            threads=args.threads, device=None, epochs=args.epochs, tokens=args.tokens,
                            tokens_per_param=None, data=args.data)
    return build_config(ns)


def run_ensemble(args) -> int:
    import torch

    from scarce import atomic
    from scarce import ensemble as ens

    if args.threads:
        torch.set_num_threads(args.threads)
    log = (lambda *a: None) if args.quiet else print
    if args.runs or args.snapshots:
        if args.runs and args.snapshots:
            raise UserError("give --runs or --snapshots, not both")
        members = ens.snapshot_members(args.snapshots) if args.snapshots else [ens.Member.of_run(r) for r in args.runs]
        report = ens.write_evaluation(args.out, members, args.combine, max_tokens=args.eval_tokens)
    else:
        if not args.data:
            raise UserError("--data DIR is required: a token store made by `scarce prepare`")
        if args.members is None and args.snapshot_every is None:
            raise UserError("--members K is required (or --runs / --snapshots to evaluate existing runs)")
        _check_distill(args)
        if args.snapshot_every is not None:
            report = ens.snapshot_ensemble(_member_config(args), args.snapshot_every, args.out, args.combine,
                                           args.results, args.quiet)
            _print_report(report, Path(args.out), log)
            return 0
        base = _member_config(args)
        report = ens.ensemble(base, args.members, args.out, args.combine, args.workers,
                              args.seed_mode, args.chain_distill, args.alpha, args.temperature,
                              args.results, args.quiet, log, args.student)
        if args.seq_student:
            dirs = [Path(m["run_dir"]) for m in report["members"]]
            report["seq_student"] = ens.seq_distill(base, dirs, args.out, args.seq_student, args.synthetic_frac,
                                                    results=args.results, quiet=args.quiet)
            atomic.write_json(Path(args.out) / "ensemble.json", report)
    _print_report(report, Path(args.out), log)
    return 0


def _check_distill(args) -> None:
    if not 0 <= args.alpha <= 1:
        raise UserError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.temperature <= 0:
        raise UserError(f"--temperature must be > 0, got {args.temperature}")


def _print_report(report: dict, out: Path, log) -> None:
    log(f"{'k':>3} {'member val':>11} {'ensemble val':>13} {'bpb':>7}")
    for k, (m, loss, bpb) in enumerate(zip(report["members"], report["prefix_val_loss"], report["prefix_val_bpb"]), 1):
        log(f"{k:>3} {m['val_loss']:>11.4f} {loss:>13.4f} {bpb:>7.4f}")
    if "seq_student" in report:
        log(f"student trained on ensemble samples: val {report['seq_student']['val_loss']:.4f}")
    if "student" in report:
        log(f"student distilled from the ensemble: val {report['student']['val_loss']:.4f}")
    log(f"-> {out / 'ensemble.json'}")


def run_sample(args) -> int:
    import torch

    from scarce.sample import sample

    torch.set_num_threads(max(1, args.threads))
    if bool(args.run) == bool(args.ensemble):
        raise UserError("give --run RUN_DIR (one or more) or --ensemble DIR")
    if args.tokens < 1:
        raise UserError("--tokens must be >= 1")
    if args.temperature < 0:
        raise UserError("--temperature must be >= 0 (0 is greedy)")
    if args.top_k < 0:
        raise UserError("--top-k must be >= 0")
    runs = args.run or _ensemble_runs(Path(args.ensemble))
    if args.store_out:
        from scarce.train.distill import synthesize

        store = synthesize(runs, args.store_out, args.tokens, args.temperature, args.top_k, args.seed,
                           max(1, args.streams))
        print(f"wrote {args.tokens:,} sampled tokens -> {store.path}")
        return 0
    print(sample(runs, args.tokens, args.temperature, args.top_k, args.seed))
    return 0


def _ensemble_runs(folder: Path) -> list[str]:
    path = folder / "ensemble.json"
    if not path.is_file():
        raise UserError(f"{folder} holds no ensemble.json; make it with `scarce ensemble --out {folder} ...`")
    return [m["run_dir"] for m in json.loads(path.read_text())["members"]]
