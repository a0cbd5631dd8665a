"""`scarce fit ...`: scaling-law fits from CSV files, printed as a table or as JSON.

Every fit prints each estimate with its 95% percentile-bootstrap interval; `--json` prints one
object `{"name": {"value": v, "low": lo, "high": hi}}` on stdout (other tools parse it) and sends
warnings to stderr. Bad CSVs and impossible requests are one-line errors with exit status 2.
"""

from __future__ import annotations

import json
import math
import sys
import warnings

import numpy as np

from scarce.cli import options
from scarce.cli.options import ArgumentParser, check_file_out
from scarce.errors import UserError
from scarce.report.plots import plot_fit
from scarce.scaling import chinchilla
from scarce.scaling.csvio import read_columns
from scarce.scaling.efficiency import empirical_efficiency, fit_efficiency
from scarce.scaling.laws import fit_data_constrained, fit_joint, fit_power_law
from scarce.scaling.plan import LAW_PARAMS, core_warnings, fit_core_map, format_plan, plan, plan_to_json_dict

TITLES = {
    "power_law": "power law  y = E + A·x^(-alpha)",
    "joint": "joint limit  L(N, K) = E_N + A_N·K^(-alpha_N),  E_N = E + A·N^(-alpha)",
    "data_constrained": "data-constrained  L = E + B·D'^(-beta),  D' = U + U·R*·(1 - exp(-R/R*))",
    "efficiency": "data efficiency D_ref(L)/D, parametric reference L(D) = E + A·D^(-alpha)",
    "efficiency_empirical": "data efficiency D_ref(L)/D, empirical reference curve",
    "chinchilla1": "Chinchilla approach 1 (envelope): N_opt ∝ C^a, D_opt ∝ C^b",
    "chinchilla2": "Chinchilla approach 2 (IsoFLOP parabolas): N_opt ∝ C^a, D_opt ∝ C^b",
    "chinchilla3": "Chinchilla approach 3: L = E + A/N^alpha + B/D^beta",
}


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help="fit scaling laws with bootstrap confidence intervals",
                       description="Fit scaling laws to points from a CSV file; every estimate comes with "
                                   "a 95% percentile-bootstrap interval.")
    fits = p.add_subparsers(dest="fit", metavar="FIT", parser_class=ArgumentParser)
    p.set_defaults(func=lambda args: _missing_fit(fits))
    _add_power_law(fits)
    _add_joint(fits)
    _add_efficiency(fits)
    _add_chinchilla(fits)
    _add_data_constrained(fits)
    _add_plan(fits)


def _missing_fit(fits) -> int:
    raise UserError(f"scarce fit: choose a fit: {', '.join(fits.choices)} (see `scarce fit --help`)")


def _common(p, plot: bool = True) -> None:
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap refits for the intervals (default 1000; 0 for none)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the resampling (default 0)")
    p.add_argument("--json", action="store_true",
                   help='print {"name": {"value", "low", "high"}} as JSON on stdout instead of a table')
    if plot:
        p.add_argument("--plot", metavar="PATH.png", help="also render the fit to this PNG")


def _add_power_law(fits) -> None:
    p = fits.add_parser("power-law", help="y = E + A·x^(-alpha) with its asymptote E",
                        description="Fit y = E + A·x^(-alpha) (x: params, members, tokens or FLOPs).")
    p.add_argument("--csv", required=True, metavar="F", help="CSV file with a header row")
    p.add_argument("--x", required=True, metavar="COL", help="column of x (positive)")
    p.add_argument("--y", required=True, metavar="COL", help="column of y, usually loss (positive)")
    _common(p)
    p.set_defaults(func=_power_law)


def _add_joint(fits) -> None:
    p = fits.add_parser("joint", help="joint limit over model size and ensemble members (two steps)",
                        description="Per model size fit loss in members K, then the asymptotes E_N in "
                                    "params N. CSV columns: params, members, loss.")
    p.add_argument("--csv", required=True, metavar="F")
    _common(p)
    p.set_defaults(func=_joint)


def _add_efficiency(fits) -> None:
    p = fits.add_parser("efficiency", help="data efficiency D_ref(L)/D against a reference curve",
                        description="How many reference tokens reach the loss L that took D tokens. "
                                    "Reference CSV columns: tokens, loss.")
    p.add_argument("--reference", required=True, metavar="F", help="reference (baseline recipe) CSV")
    p.add_argument("--loss", required=True, type=float, metavar="L", help="loss the new recipe reached")
    p.add_argument("--tokens", required=True, type=float, metavar="D", help="tokens it took")
    p.add_argument("--empirical", action="store_true",
                   help="interpolate the reference's best-loss curve instead of inverting a power-law fit")
    _common(p)
    p.set_defaults(func=_efficiency)


def _add_chinchilla(fits) -> None:
    p = fits.add_parser("chinchilla", help="compute-optimal scaling (Hoffmann et al. approaches 1, 2, 3)",
                        description="CSV columns: params, loss, and tokens or flops (C = 6ND). Method 3 fits "
                                    "L = E + A/N^alpha + B/D^beta; method 2 fits IsoFLOP parabolas (rows "
                                    "grouped by flops); method 1 takes training-curve points.")
    p.add_argument("--csv", required=True, metavar="F")
    p.add_argument("--method", type=int, choices=[1, 2, 3], default=3, help="approach (default 3)")
    p.add_argument("--drop-highest-loss", type=int, default=0, metavar="K",
                   help="drop the K highest-loss points first (Epoch AI dropped 5 outliers)")
    _common(p)
    p.set_defaults(func=_chinchilla)


def _add_data_constrained(fits) -> None:
    p = fits.add_parser("data-constrained", help="repeated-data scaling (Muennighoff et al. 2023): R*",
                        description="Fit L = E + B·D'^(-beta) with effective data D' of repeated epochs, for "
                                    "runs of one model size. CSV columns: unique_tokens, tokens, loss.")
    p.add_argument("--csv", required=True, metavar="F")
    _common(p)
    p.set_defaults(func=_data_constrained)


def _add_plan(fits) -> None:
    p = fits.add_parser("plan", help="compute-optimal N, D, FLOPs and hours for a budget or a target loss",
                        description="Plan from an approach-3 law: fitted now from --csv (with intervals) or "
                                    "read from --law-json (the output of `scarce fit chinchilla --json`).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", metavar="F", help="points to fit approach 3 to (columns as for `fit chinchilla`)")
    src.add_argument("--law-json", metavar="F", help="JSON from `scarce fit chinchilla --method 3 --json`")
    p.add_argument("--budget", type=float, action="append", default=[], metavar="C", help="FLOPs (repeatable)")
    p.add_argument("--target-loss", type=float, action="append", default=[], metavar="L", help="(repeatable)")
    p.add_argument("--target-core", type=float, action="append", default=[], metavar="S",
                   help="a CORE score to reach (repeatable); needs --core-map")
    p.add_argument("--core-map", metavar="F", help="CSV of runs with columns loss and core (val loss and CORE, e.g. "
                                                  "a miniseries evaluated with `scarce eval core`): CORE = a + b·loss")
    options.add_device_cost(p, flops_per_s=True)
    p.add_argument("--drop-highest-loss", type=int, default=0, metavar="K")
    _common(p, plot=False)
    p.set_defaults(func=_plan)


# ----------------------------------------------------------------------------- handlers


def _power_law(args) -> int:
    cols = read_columns(args.csv, [args.x, args.y])
    fit = _run(fit_power_law, cols[args.x], cols[args.y], args=args)
    return _emit(fit, args, xlabel=args.x, ylabel=args.y)


def _joint(args) -> int:
    cols = read_columns(args.csv, ["params", "members", "loss"], min_rows=9)
    return _emit(_run(fit_joint, cols["params"], cols["members"], cols["loss"], args=args), args)


def _efficiency(args) -> int:
    for flag, value in (("--loss", args.loss), ("--tokens", args.tokens)):
        if not 0 < value < math.inf:
            raise UserError(f"{flag} must be a positive finite number, got {value}")
    cols = read_columns(args.reference, ["tokens", "loss"], min_rows=2 if args.empirical else 3)
    fn = empirical_efficiency if args.empirical else fit_efficiency
    return _emit(_run(fn, cols["tokens"], cols["loss"], args.loss, args.tokens, args=args), args)


def _chinchilla(args) -> int:
    N, D, L, C = _chinchilla_points(args.csv, args.drop_highest_loss, min_rows=6 if args.method == 3 else 4)
    if args.method == 2:
        fit = _run(chinchilla.fit_approach2, N, C, L, args=args)
    else:
        fn = chinchilla.fit_approach3 if args.method == 3 else chinchilla.fit_approach1
        fit = _run(fn, N, D, L, args=args)
    return _emit(fit, args)


def _data_constrained(args) -> int:
    cols = read_columns(args.csv, ["unique_tokens", "tokens", "loss"], min_rows=5)
    return _emit(_run(fit_data_constrained, cols["unique_tokens"], cols["tokens"], cols["loss"], args=args), args)


def _plan(args) -> int:
    if args.csv:
        law = _run(chinchilla.fit_approach3, *_chinchilla_points(args.csv, args.drop_highest_loss, 6)[:3], args=args)
        _print_warnings(law)
    else:
        law = _read_law_json(args.law_json)
    cost = options.device_cost(args) or {"flops_per_s": None, "price": None}
    core_map = None
    if args.core_map:
        cols = read_columns(args.core_map, ["loss", "core"], min_rows=3)
        core_map = fit_core_map(cols["loss"], cols["core"], n_boot=args.bootstrap, seed=args.seed)
    rows = plan(law, budgets=args.budget, target_losses=args.target_loss, flops_per_s=cost["flops_per_s"],
                mfu=args.mfu, price=cost["price"], target_cores=args.target_core, core_map=core_map)
    print(json.dumps(plan_to_json_dict(rows), indent=1) if args.json else format_plan(rows))
    for w in core_warnings(args.target_core, core_map):
        print(f"warning: {w}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- helpers


def _chinchilla_points(path: str, drop: int, min_rows: int):
    """params, tokens, loss, flops from a CSV with tokens or flops or both (C = 6·N·D fills the missing one)."""
    cols = read_columns(path, ["params", "loss"], any_of=[["tokens", "flops"]], min_rows=min_rows + max(drop, 0))
    N, L = cols["params"], cols["loss"]
    D = cols["tokens"] if "tokens" in cols else cols["flops"] / (6 * N)
    C = cols["flops"] if "flops" in cols else 6 * N * D
    if drop < 0:
        raise UserError("--drop-highest-loss must be >= 0")
    keep = np.sort(np.argsort(L, kind="stable")[: L.size - drop])
    return N[keep], D[keep], L[keep], C[keep]


def _read_law_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
        if not isinstance(obj, dict):
            raise TypeError(f"a JSON {type(obj).__name__}, not an object")
        missing = [k for k in LAW_PARAMS if k not in obj]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        law = {k: float(obj[k]["value"]) for k in LAW_PARAMS}
        bad = [k for k, v in law.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"{', '.join(bad)} not a finite number")
        return law
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise UserError(f"{path}: not the JSON of `scarce fit chinchilla --json` ({e})") from None


def _run(fn, *inputs, args):
    """Call a fit with the common options; its Python warnings are printed by `_emit` instead."""
    if args.bootstrap < 0:
        raise UserError("--bootstrap must be >= 0")
    check_file_out(getattr(args, "plot", None), "--plot")  # before the fit, not after it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*inputs, n_boot=args.bootstrap, seed=args.seed)


def _emit(fit, args, **plot_labels) -> int:
    """Print the fit (JSON or table), its warnings to stderr, and render the plot if asked."""
    print(json.dumps(fit.to_json_dict(), indent=1) if args.json else format_fit(fit))
    _print_warnings(fit)
    if getattr(args, "plot", None):
        plot_fit(fit, args.plot, **plot_labels)
    return 0


def _print_warnings(fit) -> None:
    if fit.n_boot and fit.n_failed:
        print(f"note: {fit.n_failed} of {fit.n_boot} bootstrap refits failed; intervals use the other "
              f"{fit.n_boot - fit.n_failed}", file=sys.stderr)
    for w in fit.warnings:
        print(f"warning: {w}", file=sys.stderr)


def format_fit(fit) -> str:
    """A readable table of the estimates with their intervals."""
    pct = f"{fit.level:.0%}"
    num = lambda v: f"{v:.5g}" if np.isfinite(v) else ("inf" if np.isinf(v) else "-")
    rows = [["name", "value", f"{pct} low", f"{pct} high"]]
    rows += [[k, num(e.value), num(e.low), num(e.high)] for k, e in fit.estimates.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [TITLES.get(fit.kind, fit.kind) + f"   ({fit.n_points} points)"]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.append(f"percentile bootstrap: {fit.n_boot} refits resampling points, {fit.n_failed} failed"
                 if fit.n_boot else "no bootstrap (--bootstrap 0): no intervals")
    return "\n".join(lines)
