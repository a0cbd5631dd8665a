"""Hyper-epoch populations against independent ensembles, at the same number of training epochs.

A population is a few long cyclic trajectories (optim.schedule=cyclic): each keeps its weights at every cycle
end, and those snapshots are the members (q0, "Primitives for Hyper-Epoch Pretraining"; NanoGPT Slowrun's
unlimited record). Options of the trajectories: weight decay against the rate, a perturbation at each cycle
boundary, and chain distillation of each cycle from the snapshot before it. The members are combined uniformly
(logit and probability averaging) and by a learned prior: mixture weights fitted on select, the top-K mixture
of lowest select loss reported once on val (`scarce.ensemble.learned_prior`).

The recipe trains, per size, `trajectories` population runs and `members` independent runs of the same preset,
and measures both as allocation curves: val loss against total training epochs (the population after c cycles
of every trajectory; the first K independent members). Its headline is the epochs the population needs to reach
the K-member ensemble's val loss, as a ratio of the ensemble's epochs, with a block-bootstrap interval over the
val windows (every curve point resampled on the same windows). The seeds' spread is not in that interval: run
the recipe under two seeds (option `seed`) and compare.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from scarce import atomic
from scarce.data.store import open_store
from scarce.device import pick_device
from scarce.ensemble import evaluate_ensemble, member_token_logprobs, mixture_nll, prior_of
from scarce.errors import UserError
from scarce.progress import Lines
from scarce.recipes.common import Context, point_config, recipe_row, run_points
from scarce.rundir import Member, read_config, snapshot_members
from scarce.scaling.paired import block_indices, loss_difference

TOP_K = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""The K the prior's top-K mixtures are chosen among (Slowrun sweeps 8 to 256); those above the members drop."""
N_BOOT = 1000


def population_points(depth: int, trajectories: int, cycles: int, cycle_epochs: float, lr_floor: float,
                      wd_floor: float, perturb: tuple[float, float], chain: tuple[float, float, int],
                      seed: int) -> list[dict]:
    """The trajectories' override sets: cyclic runs of `cycles` cycles; `perturb` (first, last), `chain`
    (alpha, temperature, first cycle; alpha 0: no chain)."""
    common = {"model.depth": depth, "optim.schedule": "cyclic", "optim.cycle_epochs": cycle_epochs,
              "optim.final_lr_frac": lr_floor, "optim.wd_schedule": "anti" if wd_floor < 1 else "constant",
              "optim.wd_floor": wd_floor, "optim.perturb": perturb[0], "optim.perturb_final": perturb[1],
              "train.epochs": cycles * cycle_epochs, "tags.group": f"population-d{depth}"}
    if chain[0]:
        common |= chain_overrides(*chain)
    return [{**common, "train.seed": seed + t, "tags.trajectory": t} for t in range(trajectories)]


def chain_overrides(alpha: float, temperature: float, first: int) -> dict:
    """The overrides of chain distillation inside a cyclic run: each cycle from `first` on learns from the snapshot
    before it at weight `alpha` and temperature `temperature`."""
    return {"objective.kind": "chain", "objective.alpha": alpha, "objective.temperature": temperature,
            "objective.chain_from": first}


def member_points(depth: int, members: int, epochs: float, wd_factor: float, seed: int, base_wd: float) -> list[dict]:
    """The independent members' override sets: the preset's schedule, `epochs` each, seeds seed..seed+K-1."""
    return [{"model.depth": depth, "train.epochs": epochs, "optim.weight_decay": base_wd * wd_factor,
             "train.seed": seed + k, "tags.group": f"independent-d{depth}", "tags.member": k} for k in range(members)]


def population(ctx: Context, trajectories: int = 2, cycles: int = 4, cycle_epochs: float = 1.0,
               lr_floor: float = 0.08, wd_floor: float = 0.7, perturb: float = 0.0, perturb_final: float = 0.0,
               chain_alpha: float = 0.0, chain_temperature: float = 1.2, chain_from: int = 1, members: int = 4,
               member_epochs: float = 0.0, wd_factor: float = 1.0, top_k: list | None = None, seed: int = 0) -> dict:
    """Per size: `trajectories` cyclic runs of `cycles` cycles of `cycle_epochs` epochs, and `members` independent
    runs of `member_epochs` epochs each (default: one trajectory's, cycles x cycle_epochs) at the preset's weight
    decay x `wd_factor`; their allocation curves and the population's epochs to reach the independent ensemble."""
    if trajectories < 1 or cycles < 1 or members < 1 or cycle_epochs <= 0:
        raise UserError("recipe population: trajectories, cycles and members must be >= 1 and cycle_epochs > 0")
    member_epochs = member_epochs or cycles * cycle_epochs
    base_wd = _base_weight_decay(ctx)
    per_size = {}
    for depth in ctx.sizes:
        pop = population_points(depth, trajectories, cycles, cycle_epochs, lr_floor, wd_floor,
                                (perturb, perturb_final), (chain_alpha, chain_temperature, chain_from), seed)
        rows = run_points(ctx, "population", pop + member_points(depth, members, member_epochs, wd_factor, seed,
                                                                 base_wd))
        if not all(rows):
            raise UserError(f"recipe population: {sum(r is None for r in rows)} run(s) of depth {depth} failed; "
                            "see the run store (scarce runs) and rerun with --retry-failed")
        runs = [recipe_row(r) for r in rows]
        curves = allocation_curves(ctx, runs[:trajectories], runs[trajectories:], cycles, cycle_epochs,
                                   member_epochs, list(top_k or TOP_K), Path(ctx.out) / f"population-d{depth}.npz")
        per_size[depth] = {"trajectories": runs[:trajectories], "members": runs[trajectories:], **curves}
    options = {"trajectories": trajectories, "cycles": cycles, "cycle_epochs": cycle_epochs, "lr_floor": lr_floor,
               "wd_floor": wd_floor, "perturb": perturb, "perturb_final": perturb_final, "chain_alpha": chain_alpha,
               "chain_temperature": chain_temperature, "chain_from": chain_from, "members": members,
               "member_epochs": member_epochs, "wd_factor": wd_factor, "seed": seed}
    return {"recipe": "population", "sweep": "population", "options": options, "best": per_size}


def _base_weight_decay(ctx: Context) -> float:
    return point_config({}, data=ctx.data, preset=ctx.preset, overrides=ctx.overrides).optim.weight_decay


def allocation_curves(ctx: Context, trajectories: list[dict], members: list[dict], cycles: int, cycle_epochs: float,
                      member_epochs: float, ks: list[int], windows_path: Path) -> dict:
    """`measure_population` of the recipe's runs; writes every curve point's per-window val NLL to
    `windows_path` (the numbers the intervals resample)."""
    pop = population_members([r["run_dir"] for r in trajectories], cycles)
    ind = [Member.of_run(r["run_dir"]) for r in members]
    device = pick_device()
    curves, windows = measure_population(open_store(ctx.data), pop, ind, len(trajectories), cycle_epochs,
                                         [member_epochs] * len(ind), ks, device)
    atomic.write_arrays(windows_path, **windows)
    return {**curves, "windows": str(windows_path)}


def population_members(run_dirs: list, cycles: int) -> list[Member]:
    """The snapshots of cyclic runs ordered cycle by cycle (cycle 1 of every run, then cycle 2, ...), so that each
    prefix of width x c members is the population after c cycles."""
    snaps = [snapshot_members(d) for d in run_dirs]
    if any(len(s) != cycles for s in snaps):
        raise UserError(f"population: the trajectories kept {[len(s) for s in snaps]} snapshots, not {cycles} each "
                        "(one per cycle end)")
    return [snaps[t][c] for c in range(cycles) for t in range(len(snaps))]


def measure_population(store, pop: list[Member], ind: list[Member], width: int, cycle_epochs: float,
                       member_epochs: list[float], ks: list[int], device: str = "cpu",
                       progress: Lines | None = None) -> tuple[dict, dict]:
    """Val loss against total epochs for the population `pop` (`population_members` of `width` trajectories: uniform
    logit and probability averages, and the learned prior refitted on select) after each cycle, and for the first K
    of the independent members `ind` (their epochs `member_epochs`; logit and probability averages); the prior over both kinds together; the
    population's epochs to reach the whole independent ensemble. Returns the curves and every point's per-window
    val NLL. `progress`: where each pass over the members shows its tokens/s and ETA."""
    cfg = read_config(pop[0].run_dir)
    seq_len, batch = cfg.model.seq_len, cfg.train.batch_size
    val, token_bytes = store.split("val"), store.token_bytes()
    pop_logit = evaluate_ensemble(pop, val, token_bytes, seq_len, batch, device=device, progress=progress)
    ind_logit = evaluate_ensemble(ind, val, token_bytes, seq_len, batch, device=device, progress=progress)
    fit = member_token_logprobs(pop + ind, store.split("select"), seq_len, batch, device=device, progress=progress)
    held = member_token_logprobs(pop + ind, val, seq_len, batch, device=device, progress=progress)
    n_pop, cycles = len(pop), len(pop) // width
    windows, population_curve, independent_curve = {}, [], []
    for c in range(1, cycles + 1):
        n = width * c
        prior = prior_of(fit[:n], held[:n], [k for k in ks if k <= n])
        population_curve.append({
            "cycles": c, "members": n, "epochs": n * cycle_epochs, "uniform_logit": pop_logit["prefix_loss"][n - 1],
            "prior": prior["val_loss"], "uniform_prob": prior["val_loss_uniform"], "prior_k": prior["k"],
            "prior_select": prior["select_loss"][prior["k"]], "uniform_select": prior["select_loss_uniform"]})
        windows[f"population_logit_{c}"] = pop_logit["prefix_window_nll"][n - 1]
        windows[f"population_prior_{c}"] = prior["prior_window_nll"]
        windows[f"population_prob_{c}"] = prior["uniform_window_nll"]
    for k in range(1, len(ind) + 1):
        prob = mixture_nll(held[n_pop:n_pop + k], np.full(k, 1.0 / k)).sum(-1).numpy()
        independent_curve.append({"members": k, "epochs": sum(member_epochs[:k]), "logit": ind_logit["prefix_loss"][k - 1],
                                  "prob": float(prob.sum() / prob.size / seq_len)})
        windows[f"independent_logit_{k}"] = ind_logit["prefix_window_nll"][k - 1]
        windows[f"independent_prob_{k}"] = prob
    both = prior_of(fit, held, [k for k in ks if k <= len(fit)])
    windows["mixture_prior"], windows["mixture_prob"] = both["prior_window_nll"], both["uniform_window_nll"]
    epochs = [p["epochs"] for p in population_curve]
    target = windows[f"independent_logit_{len(ind)}"]
    pop_flops, ind_flops = curve_flops(pop, width), np.cumsum([m.flops() or np.nan for m in ind]).tolist()
    for point, f in zip(population_curve, pop_flops):
        point["flops"] = f
    for point, f in zip(independent_curve, ind_flops):
        point["flops"] = None if np.isnan(f) else float(f)
    curves = {
        "population_curve": population_curve, "independent_curve": independent_curve,
        "mixture": {"members": len(fit), "epochs": epochs[-1] + sum(member_epochs), "prior": both["val_loss"],
                    "uniform_prob": both["val_loss_uniform"], "prior_k": both["k"],
                    "population_weight": float(np.sum(both["weights"][:n_pop]))},
        "prior_weights": prior["weights"],
        "reach": {kind: reach_ratio(epochs, [windows[f"population_{kind}_{c}"] for c in range(1, cycles + 1)],
                                    target, sum(member_epochs), seq_len)
                  for kind in ("prior", "logit")},
        "reach_flops": None if None in pop_flops or np.isnan(ind_flops[-1]) else {
            kind: reach_ratio(pop_flops, [windows[f"population_{kind}_{c}"] for c in range(1, cycles + 1)], target,
                              float(ind_flops[-1]), seq_len) for kind in ("prior", "logit")},
        "prior_gain": paired_gain(windows[f"population_prob_{cycles}"], windows[f"population_prior_{cycles}"],
                                  seq_len),
        "val_windows": len(target), "window_tokens": seq_len,
    }
    return curves, windows


def curve_flops(pop: list[Member], width: int) -> list[float | None]:
    """Training FLOPs of the population after each cycle: the cycle's snapshots' FLOPs summed over the
    trajectories (teacher forwards of a chain included); None at a cycle whose snapshots do not record them."""
    out = []
    for c in range(len(pop) // width):
        flops = [m.flops() for m in pop[c * width:(c + 1) * width]]
        out.append(None if None in flops else float(sum(flops)))
    return out


def epochs_to_reach(epochs: list[float], losses: list[float], target: float) -> float:
    """The epochs at which a falling curve first reaches `target`, interpolated linearly in log epochs between
    its points; the first point's epochs when it starts at or below target (an upper bound), inf if never."""
    if losses[0] <= target:
        return epochs[0]
    for (e0, l0), (e1, l1) in zip(zip(epochs, losses), zip(epochs[1:], losses[1:])):
        if l1 <= target:
            f = (l0 - target) / (l0 - l1)
            return math.exp(math.log(e0) + f * (math.log(e1) - math.log(e0)))
    return math.inf


def epochs_ratio(epochs: list[float], losses, target: float, target_epochs: float) -> float:
    """`target_epochs` over the epochs a curve of `losses` needs to reach `target` (`epochs_to_reach`); 0 if never."""
    return target_epochs / epochs_to_reach(epochs, list(losses), target)


def reach_ratio(epochs: list[float], curve: list[np.ndarray], target: np.ndarray, target_epochs: float,
                tokens_per_window: int, n_boot: int = N_BOOT) -> dict:
    """The target's epochs over the epochs the curve needs to reach the target's val loss (4.6 in q0: the
    population needs 4.6x fewer epochs), with a moving-block bootstrap interval over the val windows, every
    point and the target resampled on the same windows. Censored where the curve starts below the target (the
    ratio is at least the value) or never reaches it (the ratio is below target_epochs / epochs[-1])."""
    points = np.stack(curve)  # (P, windows)

    def ratio(idx) -> float:
        scale = len(idx) * tokens_per_window
        return epochs_ratio(epochs, points[:, idx].sum(1) / scale, target[idx].sum() / scale, target_epochs)

    value = ratio(np.arange(len(target)))
    draws = np.array([ratio(i) for i in block_indices(len(target), n_boot, 0)])
    low, high = np.percentile(draws, [2.5, 97.5])
    losses = points.sum(1) / (points.shape[1] * tokens_per_window)
    target_loss = target.sum() / (len(target) * tokens_per_window)
    censored = "above" if losses[0] <= target_loss else "below" if losses[-1] > target_loss else ""
    return {"value": value, "low": float(low), "high": float(high), "censored": censored,
            "target_loss": float(target_loss), "target_epochs": target_epochs,
            "reached_share": float(np.mean(draws > 0))}


def paired_gain(base: np.ndarray, candidate: np.ndarray, tokens_per_window: int) -> dict:
    """Val loss of `base` minus `candidate` (positive: the candidate is better), with its block-bootstrap interval."""
    return loss_difference(base, candidate, tokens_per_window, n_boot=N_BOOT)
