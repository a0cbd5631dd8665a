"""Kim et al.'s member recipe against the single-model setting, as ensembles, over seeds.

Kim et al. tune ensemble members apart from single models: members train 2x the epochs at 0.5x the weight decay of
the single model's best setting. This script trains, for each seed s, K independent members of each recipe
(`--recipes EPOCHS/WD`, factors on the preset's epochs and weight decay; seeds s..s+K-1, the population recipe's
members, so its run store's members are reused) and measures, per seed and recipe, the val loss of the first k
members' logit average for k = 1..K. For each recipe against the first it reports the paired difference at every
k, and each ensemble's val loss as a multiple of the budget on a bench's standard reference (`--reference`, read
as `scarce ablate --reference` reads it: the empirical multiple, interpolated along the reference's points).
Intervals are `scarce ablate`'s: one block resample of the val windows for every run, the seeds' spread
(Student-t in effect for a difference), and the reference's points widened by their misfit.

    python benchmarks/member_recipe.py --data STORE --results RES --out OUT --depth 4 --members 4 \
        --seeds 0 100 200 --recipes 1.0/1.0 2.0/0.5 [--train-only] --set optim.lr=0.003 ...

Prints a table and writes OUT/member_recipe.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from scarce import atomic
from scarce.bench.measured import interval
from scarce.config import parse_assignments
from scarce.data.store import open_store
from scarce.device import pick_device
from scarce.ensemble import evaluate_ensemble
from scarce.errors import UserError
from scarce.recipes.ablate import Draws, empirical_multiple, reference_rows, run_windows
from scarce.recipes.common import Context, point_config, run_points, run_train_tokens
from scarce.recipes.population import member_points
from scarce.rundir import Member
from scarce.runs.executors import Execution
from scarce.scaling.laws import fit_power_law

N_BOOT = 1000
sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_results import render_member_recipe  # noqa: E402  (the results file renders the same tables)


def parse_recipe(text: str) -> tuple[float, float]:
    try:
        e, w = (float(x) for x in text.split("/"))
    except ValueError:
        raise SystemExit(f"member_recipe: --recipes takes EPOCHS/WD factors such as 2.0/0.5, got {text!r}") from None
    return e, w


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 100, 200])
    ap.add_argument("--recipes", nargs="+", default=["1.0/1.0", "2.0/0.5"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--reference", help="a bench's results root: its standard runs are the reference for the multiples (`scarce ablate --reference`)")
    ap.add_argument("--reference-depth", type=int, default=0, help="the reference runs' depth (default: the one depth "
                    "every size of data has)")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    a = ap.parse_args(argv)
    recipes = [parse_recipe(r) for r in a.recipes]
    overrides = parse_assignments(a.overrides, "--set")
    base = point_config({"model.depth": a.depth}, data=a.data, preset=a.preset, overrides=overrides)
    epochs, wd = base.train.epochs, base.optim.weight_decay
    ctx = Context(data=a.data, out=a.out, sizes=[a.depth], preset=a.preset, overrides=overrides,
                  execution=Execution(results=a.results).held(a.workers, 1))
    # seed by seed, every recipe, so that a stopped call leaves whole seeds behind
    points, keys = [], []
    for seed in a.seeds:
        for e, w in recipes:
            for p in member_points(a.depth, a.members, epochs * e, w, seed, wd):
                points.append(p)
                keys.append((seed, f"{e:g}/{w:g}"))
    rows = run_points(ctx, "population", points)
    if any(r is None for r in rows):
        print(f"member_recipe: {sum(r is None for r in rows)} member run(s) failed", file=sys.stderr)
        return 1
    if a.train_only:
        return 0
    try:
        result = measure(a, rows, keys, recipes)
    except UserError as e:
        print(f"member_recipe: {e}", file=sys.stderr)
        return 1
    atomic.write_text(Path(a.out) / "member_recipe.json", json.dumps(result, indent=1))
    print(render_member_recipe(result, {}))
    return 0


def measure(a, rows, keys, recipes) -> dict:
    """Per seed and recipe the first k members' logit average on val (k = 1..K); per k the paired difference of
    each recipe from the first, and each ensemble's loss as a multiple of the budget on the reference's points.
    Intervals are `ablate.Draws`': the same block resample of the val windows for every run, plus the seeds'
    spread (pooled for a level, the comparison's own for a difference: Student-t in effect), plus, for a multiple,
    the reference's points widened by their misfit."""
    store = open_store(a.data)
    val, token_bytes = store.split("val"), store.token_bytes()
    cfg = rows[0].config
    seq_len, batch = cfg.model.seq_len, cfg.train.batch_size
    device = pick_device()
    # the reference first (a wrong one fails before the passes over the members): the one depth every size has
    ref = reference_rows(a.reference, store, a.reference_depth) if a.reference else None
    names = [f"{e:g}/{w:g}" for e, w in recipes]
    windows: dict[str, list] = {}  # "recipe@k" -> per seed (windows,) summed NLL
    losses: dict[str, list] = {}
    per_seed: dict = {}
    for seed in a.seeds:
        per_seed[str(seed)] = {}
        for name in names:
            runs = [r for r, key in zip(rows, keys) if key == (seed, name)]
            ev = evaluate_ensemble([Member.of_run(r.run_dir) for r in runs], val, token_bytes, seq_len, batch,
                                   device=device)
            for k in range(a.members):
                windows.setdefault(f"{name}@{k + 1}", []).append(np.asarray(ev["prefix_window_nll"][k], float))
                losses.setdefault(f"{name}@{k + 1}", []).append(float(ev["prefix_loss"][k]))
            per_seed[str(seed)][name] = {"val_by_k": [float(x) for x in ev["prefix_loss"]],
                                         "member_val": [r.val_loss for r in runs],
                                         "run_ids": [r.id for r in runs]}
    d = Draws({n: np.stack(w) for n, w in windows.items()}, {n: np.asarray(v) for n, v in losses.items()}, seq_len,
              N_BOOT)
    law = None
    if a.reference:
        law = d.reference_law([run_train_tokens(r) for r in ref], [r.val_loss for r in ref],
                              np.stack([run_windows(r, store) for r in ref]), ref[0].config.model.seq_len,
                              [r.id for r in ref])
    levels = []
    for name in names:
        for k in range(1, a.members + 1):
            value, draws = d.loss(f"{name}@{k}")
            row = {"recipe": name, "members": k, "val": interval(value, draws)}
            if law is not None:
                budget = law["losses"][0]
                point = empirical_multiple(law["tokens"], law["losses"], budget, value)
                with np.errstate(invalid="ignore", divide="ignore"):  # a draw of the reference below zero
                    boot = [empirical_multiple(law["tokens"], y, y[0], x) for y, x in zip(law["loss_draws"], draws)]
                row["multiple_empirical"] = {**interval(point[0], np.array([b[0] for b in boot])),
                                             "extrapolated": point[1]}
            levels.append(row)
    asymptotes = {}
    for name in names:  # the K-law L(K) = E + A K^-alpha of each recipe's mean ensembles, as the bench's finding 3
        ks = list(range(1, a.members + 1))
        draws = np.stack([d.loss(f"{name}@{k}")[1] for k in ks], axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_power_law(ks, [d.loss(f"{name}@{k}")[0] for k in ks], y_draws=draws)
        e = fit.estimates["E"]
        asymptotes[name] = {"E": {"value": e.value, "low": e.low, "high": e.high},
                            "alpha": fit.estimates["alpha"].value, "warnings": list(fit.warnings),
                            "draws": fit.data["aligned"]["E"]}
    for name in names[1:]:  # the difference of asymptotes on the refits both recipes made (nan where one failed)
        diff = asymptotes[name]["draws"] - asymptotes[names[0]]["draws"]
        value = asymptotes[name]["E"]["value"] - asymptotes[names[0]]["E"]["value"]
        asymptotes[name]["E_minus_first"] = interval(value, diff)  # failed refits (nan) are left out
    for v in asymptotes.values():
        del v["draws"]
    comparisons = []
    for name in names[1:]:
        for k in range(1, a.members + 1):
            diff, draws, noise = d.difference(f"{names[0]}@{k}", f"{name}@{k}")
            by_seed = np.asarray(losses[f"{name}@{k}"]) - np.asarray(losses[f"{names[0]}@{k}"])
            comparisons.append({"recipe": name, "against": names[0], "members": k, "delta": interval(diff, draws),
                                "by_seed": [float(x) for x in by_seed],
                                "better_on_every_seed": bool((by_seed < 0).all()),
                                "seed_noise": noise.to_json_dict()})
    out = {"data": a.data, "depth": a.depth, "members": a.members, "seeds": a.seeds, "recipes": names,
           "val_windows": d.n_windows, "window_tokens": seq_len, "n_boot": N_BOOT, "per_seed": per_seed,
           "levels": levels, "comparisons": comparisons, "asymptotes": asymptotes}
    if law is not None:
        out["reference"] = {**law["json"], "results": a.reference, "warnings": law["warnings"]}
    return out


if __name__ == "__main__":
    sys.exit(main())
