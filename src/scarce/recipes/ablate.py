"""Ablations as data multiples: what each change to a recipe is worth, in nats and in data.

A raw loss difference cannot be compared across scales or budgets; a data multiple can. The recipe trains a
baseline config and each change (a set of config fields, or a named stack of them) over several seeds, the seed
of every config seeing the same initialisation and data order (paired), and reports for each comparison:

- the paired val difference, variant minus base (negative: the change helps), in nats per token;
- its data multiple against a reference law L(D) = E + A·D^(-alpha) of the standard recipe on more data: the
  data the reference would need to reach the variant's loss over the data it needs to reach the base's,
  D_ref(L_variant) / D_ref(L_base) = ((L_base - E) / (L_variant - E))^(1/alpha) (above 1: the change is worth
  that many times the data; infinite where the variant is below the reference's asymptote); not identified where
  the law's fit sits at a bound (its asymptote at 0: a warning, never a result), and beside it the empirical
  multiple, read off the reference's points without a law (interpolated in log-log along them; flagged where a
  loss lies outside them);
- its cost: training FLOPs and wall time, variant over base.

Comparisons: `add` puts each change alone on the baseline (and, with several changes, all of them stacked);
`remove` takes each change out of the full stack (what the change buys inside the stack); `both` does both.

The reference law comes from a run store that holds standard runs on more data (`scarce bench`'s standard stage:
per size of data the run best on select), or the recipe fits one by training the baseline itself on the larger
token stores given (`reference_data`). Its losses must be on the ablation's val split (checked).

Intervals (95%, percentile) come from paired draws: every run's loss recomputed on the same moving-block resamples
of the val windows, plus seed noise measured by the repeats. Each comparison's seed noise is the spread of its own
paired differences over seeds (a Student-t margin: the sd is drawn from its chi-square distribution with seeds - 1
degrees of freedom, so 3 seeds give wide intervals, as they should); the base's level carries the spread of every
config's seeds, pooled. The reference points carry that pooled noise plus their law's misfit (as the bench's do),
and the law is refitted per draw. With one seed the intervals cover the val windows and the reference only
(a warning says so). What no interval covers: the data sample (a different budget drawn from the corpus).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scarce.config import parse_assignment, slowrun_overrides
from scarce.data.store import open_store
from scarce.device import pick_device
from scarce.ensemble import evaluate_ensemble
from scarce.errors import UserError
from scarce.recipes.common import Context, point_config, recipe_row, run_points, run_train_tokens
from scarce.rundir import Member, best_val_windows
from scarce.runs.store import RunRow, RunStore
from scarce.scaling.efficiency import empirical_frontier, interpolate_tokens, tokens_for_loss
from scarce.scaling.laws import LEVEL, fit_power_law, quantiles
from scarce.scaling.noise import SeedNoise, lack_of_fit, model_noise, window_variance
from scarce.scaling.paired import block_indices

STACKS = {"slowrun": lambda: slowrun_overrides(True), "slowrun-noloop": lambda: slowrun_overrides(False),
          "slowrun-record": lambda: slowrun_overrides(True, record=True),
          "slowrun-record-noloop": lambda: slowrun_overrides(False, record=True)}
"""Named sets of fields a change may name as '@NAME' (every technique of NanoGPT Slowrun's 1-hour record that
scarce has a knob for, with and without looping)."""
MODES = ("add", "remove", "both")
BASELINE, STACK = "baseline", "stack"


@dataclass(frozen=True)
class Change:
    """A named change to the baseline: config fields and their values."""

    name: str
    fields: dict


def parse_change(text: str) -> Change:
    """'NAME:FIELD=VALUE[,FIELD=VALUE...]' or 'NAME:@STACK' (a named stack of fields, `STACKS`)."""
    name, sep, body = str(text).partition(":")
    name, body = name.strip(), body.strip()
    if not sep or not name or not body:
        raise UserError(f"change {text!r}: write NAME:FIELD=VALUE[,FIELD=VALUE] or NAME:@STACK")
    if name in (BASELINE, STACK):
        raise UserError(f"change {text!r}: {name!r} is reserved (the baseline and the stacked changes)")
    if body.startswith("@"):
        if body[1:] not in STACKS:
            raise UserError(f"change {name}: unknown stack {body[1:]!r} (known: {', '.join(sorted(STACKS))})")
        return Change(name, STACKS[body[1:]]())
    return Change(name, dict(parse_assignment(item.strip(), f"change {name}") for item in body.split(",")))


def check_changes(changes: list[Change], stacked: bool = True) -> None:
    """Names unique; with `stacked`, no two changes set one field to different values (they could not be
    stacked)."""
    if not changes:
        raise UserError("ablate: give at least one change")
    names = [c.name for c in changes]
    if len(set(names)) < len(names):
        raise UserError(f"ablate: change names must be unique, got {names}")
    seen: dict[str, tuple[str, object]] = {}
    for c in changes:
        if not c.fields:
            raise UserError(f"change {c.name}: sets no field")
        for k, v in c.fields.items():
            if k.split(".")[0] in ("data", "tags") or k in ("train.seed",):
                raise UserError(f"change {c.name}: {k} cannot be ablated (the recipe sets data, seeds and tags)")
            if stacked and k in seen and seen[k][1] != v:
                raise UserError(f"changes {seen[k][0]} and {c.name} set {k} to different values; they cannot be stacked")
            seen.setdefault(k, (c.name, v))


def plan(changes: list[Change], mode: str, stack: bool = True) -> tuple[dict[str, dict], list[dict]]:
    """The configs to train (name -> fields over the baseline) and the comparisons between them
    ({name, kind, base, variant}, by config name). `stack` False: mode add without the stack of all changes."""
    if mode not in MODES:
        raise UserError(f"ablate: mode must be one of {', '.join(MODES)}, got {mode!r}")
    stack = stack or mode != "add"
    check_changes(changes, stacked=stack and len(changes) > 1)
    merged = lambda cs: {k: v for c in cs for k, v in c.fields.items()}
    configs, comparisons = {BASELINE: {}}, []
    if mode in ("add", "both"):
        for c in changes:
            configs[c.name] = dict(c.fields)
            comparisons.append({"name": c.name, "kind": "add", "base": BASELINE, "variant": c.name})
    if stack and (len(changes) > 1 or mode != "add"):
        configs[STACK] = merged(changes)
        if len(changes) > 1:
            comparisons.append({"name": STACK, "kind": "stack", "base": BASELINE, "variant": STACK})
    if mode in ("remove", "both"):
        for c in changes:
            without = f"{STACK}-without-{c.name}"
            configs[without] = merged([o for o in changes if o is not c])
            comparisons.append({"name": c.name, "kind": "remove", "base": without, "variant": STACK})
    return _dedupe(configs, comparisons)


def _dedupe(configs: dict[str, dict], comparisons: list[dict]) -> tuple[dict[str, dict], list[dict]]:
    """One config per distinct set of fields (the first name keeps it): equal configs train once."""
    first: dict[tuple, str] = {}
    alias = {}
    for name, fields in configs.items():
        key = tuple(sorted((k, repr(v)) for k, v in fields.items()))
        alias[name] = first.setdefault(key, name)
    kept = {n: f for n, f in configs.items() if alias[n] == n}
    return kept, [{**c, "base": alias[c["base"]], "variant": alias[c["variant"]]} for c in comparisons]


def config_points(configs: dict[str, dict], seeds: int, seed: int) -> tuple[list[dict], list[tuple[str, int]]]:
    """The sweep's override sets, seed-major (a partial ablation covers every config), and each one's (config, s)."""
    points, keys = [], []
    for s in range(seeds):
        for name, fields in configs.items():
            points.append({**fields, "train.seed": seed + s, "tags.ablate": name})
            keys.append((name, s))
    return points, keys


def ablate(ctx: Context, changes: list, seeds: int = 3, seed: int = 0, mode: str = "add", stack: bool = True,
           reference: str = "", reference_data: list | None = None, reference_depth: int = 0,
           n_boot: int = 1000) -> dict:
    """Train the baseline (the context's preset and overrides) and every config of `plan` over `seeds` seeds
    (seed, seed+1, ...), and measure each comparison: paired val difference and data multiple against the
    reference law (from the run store `reference`, or fitted on the baseline trained on `reference_data`), both
    with intervals over val windows and seeds, and the cost in FLOPs and wall time."""
    changes = [c if isinstance(c, Change) else parse_change(c) for c in changes]
    if seeds < 1 or n_boot < 0:
        raise UserError(f"ablate: seeds must be >= 1 and n_boot >= 0, got {seeds} and {n_boot}")
    if bool(reference) == bool(reference_data):
        raise UserError("ablate: give the reference law one way: a run store of standard runs (reference) "
                        "or larger token stores to train the baseline on (reference_data)")
    configs, comparisons = plan(changes, mode, stack)
    store = open_store(ctx.data)
    for other in reference_data or []:
        same_val(store, open_store(other), other)
    points, keys = config_points(configs, seeds, seed)
    for p in points:  # every config resolves (known fields, valid values) before anything is written
        point_config(p, data=ctx.data, preset=ctx.preset, overrides=ctx.overrides)
    ref_rows = reference_rows(reference, store, reference_depth) if reference else None  # before any training
    rows = run_points(ctx, "ablate", points)
    _require_all(rows, keys)
    by_config = {name: [r for r, (n, _) in zip(rows, keys) if n == name] for name in configs}
    if reference_data:
        extra = [run_points(ctx, "ablate-reference", [{"train.seed": seed, "tags.ablate": BASELINE}], data=d)[0]
                 for d in reference_data]
        _require_all(extra, [(f"reference on {d}", 0) for d in reference_data])
        ref_rows = [by_config[BASELINE][0], *extra]
    ctx.log(f"ablate: measuring {len(comparisons)} comparison(s) on val windows")
    result = measure(store, by_config, comparisons, ref_rows, n_boot)
    result["configs"] = {name: {"fields": fields, "runs": [recipe_row(r) for r in by_config[name]],
                                "val_loss": float(np.mean([r.val_loss for r in by_config[name]]))}
                         for name, fields in configs.items()}
    result["options"] = {"changes": {c.name: c.fields for c in changes}, "seeds": seeds, "seed": seed, "mode": mode,
                         "stack": stack,
                         "reference": reference or None, "reference_data": list(reference_data or []),
                         "n_boot": n_boot}
    return {"recipe": "ablate", "sweep": "ablate", **result, "table": table(result)}


def _require_all(rows: list, keys: list) -> None:
    failed = [f"{name} seed {s}" for r, (name, s) in zip(rows, keys) if r is None]
    if failed:
        raise UserError(f"ablate: {len(failed)} run(s) failed or diverged ({', '.join(failed[:4])}); see `scarce runs` "
                        "and rerun with --retry-failed")


def same_val(store, other, where: str) -> None:
    """Losses on two val splits are not comparable: refuse a reference measured on another one."""
    mine, theirs = (s.manifest["splits"]["val"]["sha256"] for s in (store, other))
    if mine != theirs:
        raise UserError(f"ablate: the reference at {where} was measured on another val split than {store.path} "
                        "(losses on different val text are not comparable)")


def reference_rows(results: str, store, depth: int = 0) -> list[RunRow]:
    """The bench's reference from a run store: done runs tagged stage 'standard' on the ablation's val split, and
    per size of train data the one best on select (never val), at the one depth every size has (`depth` picks)."""
    if not (Path(results) / "runs.db").is_file():
        raise UserError(f"ablate: no run store at {results} (a results root holding runs.db)")
    rs = RunStore(results, read_only=True)
    try:
        rows = [r for r in rs.list(status="done") if r.config.tags.get("stage") == "standard"
                and r.select_loss is not None]
    finally:
        rs.close()
    rows = [r for r in rows if _val_sha(r) == store.manifest["splits"]["val"]["sha256"]]
    sizes: dict[int, list[RunRow]] = {}
    for r in rows:
        sizes.setdefault(run_train_tokens(r), []).append(r)
    if len(sizes) < 3:
        raise UserError(f"ablate: the run store {results} holds standard runs on {len(sizes)} size(s) of data on this "
                        "val split; a reference law needs 3 (run `scarce bench`, or give reference_data)")
    depths = set.intersection(*({r.config.model.depth for r in rs_} for rs_ in sizes.values()))
    if depth:
        if depth not in depths:
            raise UserError(f"ablate: no reference runs of depth {depth} on every size of data (depths: {sorted(depths)})")
        depths = {depth}
    if len(depths) != 1:
        raise UserError(f"ablate: the reference runs share depths {sorted(depths)}; choose one (reference_depth)")
    d = depths.pop()
    return [min((r for r in sizes[n] if r.config.model.depth == d), key=lambda r: r.select_loss)
            for n in sorted(sizes)]


def _val_sha(row: RunRow) -> str | None:
    try:
        return open_store(row.config.data).manifest["splits"]["val"]["sha256"]
    except UserError:  # the store was moved or deleted: its runs cannot be checked, so they are not used
        return None


def run_windows(row: RunRow, store) -> np.ndarray:
    """(windows,) summed val NLL of a run's best weights: the copy the run wrote when it chose them, else a pass."""
    seq_len = row.config.model.seq_len
    val = store.split("val")
    found = best_val_windows(row.run_dir, (row.summary or {}).get("best_step", -1),
                             store.manifest["splits"]["val"]["sha256"], seq_len)
    if found is not None and found.shape == ((len(val) - 1) // seq_len,):
        return found
    device = pick_device()
    r = evaluate_ensemble([Member.of_run(row.run_dir)], val, store.token_bytes(), seq_len,
                          row.config.train.batch_size, combine="prob", device=device)
    return np.asarray(r["member_window_nll"][0], dtype=np.float64)


# ----------------------------------------------------------------------------- the numbers


def measure(store, by_config: dict[str, list[RunRow]], comparisons: list[dict], ref_rows: list[RunRow],
            n_boot: int) -> dict:
    """Every comparison's difference, multiple and cost with their intervals (see the module docstring)."""
    tpw = int(next(iter(by_config.values()))[0].config.model.seq_len)
    seen: dict[str, np.ndarray] = {}

    def of(row: RunRow) -> np.ndarray:  # a run can be a config's and the reference's (reference_data's 1x point)
        if row.id not in seen:
            seen[row.id] = run_windows(row, store)
        return seen[row.id]

    windows = {name: np.stack([of(r) for r in rs]) for name, rs in by_config.items()}
    losses = {name: np.array([r.val_loss for r in rs]) for name, rs in by_config.items()}
    ref_tpw = int(ref_rows[0].config.model.seq_len)
    ref_windows = np.stack([of(r) for r in ref_rows])
    d = Draws(windows, losses, tpw, n_boot)
    law = d.reference_law([run_train_tokens(r) for r in ref_rows], [r.val_loss for r in ref_rows], ref_windows, ref_tpw,
                          [r.id for r in ref_rows])
    out = [compare(c, d, law, by_config) for c in comparisons]
    notes = law["warnings"][:]
    if d.seeds < 2:
        notes.append("one seed per config: the intervals cover val windows and the reference, not seed noise")
    if ref_tpw != tpw:
        notes.append(f"the reference runs' window ({ref_tpw} tokens) differs from the ablation's ({tpw}): their "
                     "val windows are resampled apart, not paired")
    notes += [f"{c['name']} ({c['kind']}): {c['note']}" for c in out if c.get("note")]
    return {"comparisons": out, "reference": law["json"], "noise": d.level.to_json_dict(), "warnings": notes,
            "val_windows": d.n_windows, "window_tokens": tpw}


class Draws:
    """Paired draws (n_boot,) of every config's mean val loss over its seeds: the same moving-block resample of
    the val windows for every run; seed noise added per comparison (`difference`) and per level (`level`).
    `windows`: name -> (seeds, windows) summed NLLs; `losses`: name -> (seeds,) the runs' val losses (the points,
    as the run store and the bench report them; each run's draws are centred on its point)."""

    def __init__(self, windows: dict[str, np.ndarray], losses: dict[str, np.ndarray], tpw: int, n_boot: int):
        self.tpw, self.n_boot = tpw, n_boot
        self.n_windows = next(iter(windows.values())).shape[1]
        self.seeds = min(w.shape[0] for w in windows.values())
        self.idx = block_indices(self.n_windows, n_boot, 0)
        self.point = {n: np.asarray(v, dtype=float) for n, v in losses.items()}  # (S,) each seed's val loss
        self.draws = {n: resample(w, self.idx, tpw) + self.point[n] for n, w in windows.items()}  # (n_boot, S)
        window_var = float(np.mean([window_variance(x) for x in self.draws.values()]))
        self.level = SeedNoise.pooled([list(p) for p in self.point.values()], window_var)
        self._level_sd = self.level.sd_draws(n_boot, seed=1)

    def loss(self, name: str) -> tuple[float, np.ndarray]:
        """The config's mean loss over seeds and its draws, with the pooled seed noise of a mean of S runs."""
        s = len(self.point[name])
        noise = self._level_sd * _normal(f"level:{name}", self.n_boot) / math.sqrt(s)
        return float(self.point[name].mean()), self.draws[name].mean(1) + noise

    def difference(self, base: str, variant: str) -> tuple[float, np.ndarray, SeedNoise]:
        """Mean over seeds of variant minus base at the same seed, its draws (windows plus the seed noise of the
        paired differences, Student-t in effect), and that noise."""
        s = min(len(self.point[base]), len(self.point[variant]))
        diff, draws = self.point[variant][:s] - self.point[base][:s], self.draws[variant][:, :s] - self.draws[base][:, :s]
        noise = SeedNoise.pooled([list(diff)], window_variance(draws))
        seed_part = noise.sd_draws(self.n_boot, seed=2) * _normal(f"diff:{base}:{variant}", self.n_boot) / math.sqrt(s)
        return float(diff.mean()), draws.mean(1) + seed_part, noise

    def reference_law(self, tokens: list[int], losses: list[float], windows: np.ndarray, tpw: int,
                      ids: list[str]) -> dict:
        """The reference law refitted on each draw: its points resampled on the same windows (when their window
        length matches), plus the pooled seed noise widened by the law's misfit."""
        point = np.asarray(losses, dtype=float)
        idx = self.idx if tpw == self.tpw and windows.shape[1] == self.n_windows else \
            block_indices(windows.shape[1], self.n_boot, 3)
        draws = resample(windows, idx, tpw) + point
        first = _quiet_fit(tokens, point)
        e = {k: first.estimates[k].value for k in ("E", "A", "alpha")}
        sse = float(((point - (e["E"] + e["A"] * np.asarray(tokens, float) ** -e["alpha"])) ** 2).sum())
        df_law = len(tokens) - 3
        noise = self.level.with_misfit(sse, df_law)
        sd = noise.sd_draws(self.n_boot, seed=4)
        noisy = draws + np.stack([model_noise([i], sd) for i in ids], axis=1)
        fit = _quiet_fit(tokens, point, noisy)
        law = {"point": e, "draws": fit.data["aligned"], "at_bound": bool(fit.flags.get("at_bound")),
               "tokens": np.asarray(tokens, dtype=float), "losses": point, "loss_draws": noisy}
        notes = [f"reference law: {w}" for w in fit.warnings]
        lof = lack_of_fit(sse, df_law, self.level)
        if lof and lof["p"] < 0.05:
            notes.append(f"the reference misses its power law beyond seed noise (F {lof['F']:.1f}, p {lof['p']:.3g}):"
                            " every multiple's interval carries that misfit")
        law["warnings"] = notes
        law["json"] = {"points": [{"run_id": i, "train_tokens": int(t), "val_loss": float(v)}
                                  for i, t, v in zip(ids, tokens, point)],
                       **{k: _interval(e[k], fit.data["aligned"][k]) for k in ("E", "A", "alpha")},
                       "lack_of_fit": lof, "noise": noise.to_json_dict(), "at_bound": bool(fit.flags.get("at_bound"))}
        return law


def _quiet_fit(tokens, losses, y_draws=None):
    """The reference power law; its warnings are kept on the fit (and go into the result), not printed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_power_law(tokens, losses, n_boot=0) if y_draws is None else \
            fit_power_law(tokens, losses, y_draws=y_draws)


def resample(windows: np.ndarray, idx: np.ndarray, tpw: int) -> np.ndarray:
    """(n_boot, runs): each run's mean loss on the resampled windows `idx` minus its mean on all of them (the
    window noise, added to a point)."""
    scale = windows.shape[1] * tpw
    return windows[:, idx].sum(-1).T / scale - windows.sum(1) / scale


def compare(c: dict, d: Draws, law: dict, by_config: dict[str, list[RunRow]]) -> dict:
    """One comparison: the difference, the multiple and the cost, each with what it rests on."""
    base, base_draws = d.loss(c["base"])
    diff, diff_draws, noise = d.difference(c["base"], c["variant"])
    p, dr = law["point"], law["draws"]
    value = data_multiple(base, base + diff, p["E"], p["A"], p["alpha"])
    draws = data_multiple(base_draws, base_draws + diff_draws, dr["E"], dr["A"], dr["alpha"])
    empirical = [empirical_multiple(law["tokens"], law["losses"], base, base + diff)]
    empirical += [empirical_multiple(law["tokens"], y, b, b + v)
                  for y, b, v in zip(law["loss_draws"], base_draws, diff_draws)]
    out = {**c, "seeds": min(len(by_config[c["base"]]), len(by_config[c["variant"]])),
           "base_loss": base, "variant_loss": base + diff, "delta": _interval(diff, diff_draws),
           "multiple": {**_interval(value, draws), "identified": not law["at_bound"]},
           "multiple_empirical": {**_interval(empirical[0][0], np.array([x[0] for x in empirical[1:]])),
                                  "extrapolated": empirical[0][1]},
           "seed_noise": noise.to_json_dict(),
           "flops_ratio": _ratio(by_config, c, "flops"), "wall_ratio": _ratio(by_config, c, "wall_seconds")}
    if base + diff <= p["E"]:
        out["note"] = f"the variant's loss is at or below the reference's asymptote E={p['E']:.4g}: multiple infinite"
    elif base <= p["E"]:
        out["note"] = f"the base's loss is at or below the reference's asymptote E={p['E']:.4g}: no multiple"
    return out


def empirical_multiple(tokens: np.ndarray, losses: np.ndarray, base: float, variant: float) -> tuple[float, bool]:
    """The multiple read off the reference's points without a law: log tokens interpolated linearly in log loss
    along its frontier (`interpolate_tokens`), extended from its end segments outside it (then flagged)."""
    front = empirical_frontier(tokens, losses)
    (d_var, out_var), (d_base, out_base) = (interpolate_tokens(*front, x) for x in (variant, base))
    return d_var / d_base, out_var or out_base


def data_multiple(base, variant, E, A, alpha):
    """D_ref(L_variant) / D_ref(L_base) on the law E + A·D^(-alpha): ((L_base - E) / (L_variant - E))^(1/alpha);
    inf where only the variant is at or below E, nan where the base is."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ratio = tokens_for_loss(variant, E, A, alpha) / tokens_for_loss(base, E, A, alpha)
    ratio = np.where(np.isinf(tokens_for_loss(base, E, A, alpha)), np.nan, ratio)
    return float(ratio) if np.ndim(ratio) == 0 else ratio


def _ratio(by_config: dict[str, list[RunRow]], c: dict, column: str) -> float | None:
    v, b = ([getattr(r, column) for r in by_config[c[k]]] for k in ("variant", "base"))
    if any(x is None for x in v + b) or not sum(b):
        return None
    return float(np.mean(v) / np.mean(b))


def _interval(value: float, draws: np.ndarray, level: float = LEVEL) -> dict:
    """{value, low, high}: the percentile interval of the draws (nan draws, failed refits, left out; an infinite
    end stays None as 'unbounded')."""
    d = np.asarray(draws, dtype=float)
    d = d[~np.isnan(d)]
    if d.size < 2:
        return {"value": _num(value), "low": None, "high": None}
    lo, hi = quantiles(d, level)
    return {"value": _num(value), "low": _num(lo), "high": _num(hi)}


def _num(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def _normal(key: str, n: int) -> np.ndarray:
    """Standard normal draws fixed by a name (the same comparison draws the same noise wherever it is measured)."""
    digest = hashlib.sha256(key.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(n)


# ----------------------------------------------------------------------------- the table


def table(result: dict) -> list[dict]:
    """One row per comparison (OUT/ablate.csv and the report's table)."""
    rows = []
    for c in result["comparisons"]:
        rows.append({"change": c["name"], "kind": c["kind"], "base": c["base"], "variant": c["variant"],
                     "seeds": c["seeds"], "base_loss": round(c["base_loss"], 5), "variant_loss": round(c["variant_loss"], 5),
                     **{f"delta_{k}": c["delta"][k] for k in ("value", "low", "high")},
                     **{f"multiple_{k}": c["multiple"][k] for k in ("value", "low", "high")},
                     "flops_ratio": c["flops_ratio"], "wall_ratio": c["wall_ratio"]})
    return rows


def multiple_text(e: dict, infinite: bool = False) -> str:
    """'v x [lo, hi]'; an infinite point or upper end (below the reference's asymptote) reads inf."""
    if e["value"] is None and not infinite:
        return "-"
    value = "inf" if e["value"] is None else f"{e['value']:.2f}"
    if e["low"] is None and e["high"] is None:
        return f"{value}x"
    high = f"{e['high']:.2f}" if e["high"] is not None else "inf"
    low = f"{e['low']:.2f}" if e["low"] is not None else "-"
    return f"{value}x [{low}, {high}]"


def markdown(result: dict) -> str:
    """The ablation's table: difference and multiples with their intervals, and the cost."""
    fmt = lambda v, f: "-" if v is None else format(v, f)
    ref = result["reference"]
    lines = [f"Reference law: L(D) = E + A·D^(-alpha), E {fmt(ref['E']['value'], '.4f')} "
             f"[{fmt(ref['E']['low'], '.4f')}, {fmt(ref['E']['high'], '.4f')}], alpha {fmt(ref['alpha']['value'], '.3f')} "
             f"[{fmt(ref['alpha']['low'], '.3f')}, {fmt(ref['alpha']['high'], '.3f')}], from "
             f"{len(ref['points'])} points ({', '.join(format(p['train_tokens'], ',') for p in ref['points'])} "
             "train tokens)" + ("; at a bound: its multiples are not identified (n/i)." if ref["at_bound"] else "."),
             "",
             "| change | kind | seeds | base loss | Δ val (variant − base) [95%] | data multiple, law [95%] "
             "| data multiple, empirical [95%] | FLOPs × | wall × |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in result["comparisons"]:
        dl, m, emp = c["delta"], c["multiple"], c["multiple_empirical"]
        law = multiple_text(m, "infinite" in c.get("note", ""))
        law = law if m.get("identified", True) else f"n/i ({law})"
        empirical = multiple_text(emp) + (" (extrapolated)" if emp.get("extrapolated") else "")
        lines.append(f"| {c['name']} | {c['kind']} | {c['seeds']} | {c['base_loss']:.4f} | {fmt(dl['value'], '+.4f')} "
                     f"[{fmt(dl['low'], '+.4f')}, {fmt(dl['high'], '+.4f')}] | {law} | {empirical} "
                     f"| {fmt(c['flops_ratio'], '.2f')} | {fmt(c['wall_ratio'], '.2f')} |")
    lines += ["", *[f"- warning: {w}" for w in result["warnings"]]]
    return "\n".join(lines) + "\n"
