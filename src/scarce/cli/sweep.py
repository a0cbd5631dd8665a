"""`scarce sweep SPEC`: run a declared sweep (resumable: done points are skipped)."""

from __future__ import annotations

from scarce.cli import options
from scarce.runs.sweep import load_spec, resolve_points, run_sweep


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a sweep spec (resumable: done points are skipped)",
        description="Run every point of a sweep spec (TOML, or a Python function as file.py:name) that is not "
                    "done yet. Each point is a run keyed by its config hash; a killed sweep resumes where it "
                    "stopped; failed points are retried only with --retry-failed.")
    p.add_argument("spec", help="sweep spec: a .toml file, or file.py:function / module:function")
    add_point_options(p)
    p.set_defaults(func=run)


def add_point_options(p) -> None:
    """The options of commands that run many points: executor, threads per point, retries, results."""
    options.add_executor(p)
    options.add_threads(p, "torch threads per point (default: cores / workers)")
    p.add_argument("--retry-failed", action="store_true", help="run failed points again")
    options.add_no_branch(p)
    options.add_results(p)
    options.add_tracker(p)


def largest_point(spec):
    """The config of the sweep's largest model (the one whose memory bounds the workers per GPU)."""
    return max((p.cfg for p in resolve_points(spec)), key=lambda c: c.model.d_model ** 2 * c.model.depth
               * c.train.batch_size * c.model.seq_len)


def run(args) -> int:
    options.use_tracker(args)
    spec = load_spec(args.spec)
    spec.branch = spec.branch and not args.no_branch
    report = run_sweep(spec, options.executor(args, args.threads or 0, lambda: largest_point(spec)), args.retry_failed,
                       args.results)
    print(f"sweep {report.name}: {len(report.ran)} ran, {len(report.skipped)} already done, "
          f"{len(report.diverged)} diverged, {len(report.failed)} failed")
    return 1 if report.failed else 0
