"""What several commands share, declared once: the options (--results, --threads, --workers and the
executor, --set, the horizon, the run config), the one FIELD=VALUE parser, token counts such as 2M,
and flags derived from the config dataclasses (their field docstrings become the help)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import math
import os
import re
from pathlib import Path

from scarce import track
from scarce.atomic import unmakeable
from scarce.config import PRESETS, RunConfig, apply_overrides, get_preset, parse_assignments, set_horizon
from scarce.ensemble import COMBINES, read_ensemble
from scarce.errors import UserError
from scarce.model import hf
from scarce.runs.executors import EXECUTORS, Execution, make_executor
from scarce.runs.gpushare import plan_workers
from scarce.runs.sweep import check_horizon
from scarce.sample import Sampling
from scarce.scaling.plan import check_device
from scarce.track import TRACKERS
from scarce.train.runtime import GPU_PEAKS


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: <message>` and exit status 2, no usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UserError(f"{self.prog}: {message} (see `{self.prog} --help`)")


# -- values -------------------------------------------------------------------------------------------

SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9, "t": 10**12}
_COUNT = re.compile(r"(\d[\d_]*(?:\.\d*)?(?:e\d+)?)([kmgbt]?)", re.IGNORECASE)


def parse_count(text: str) -> int:
    """A positive whole number written as `2000000`, `2_000_000`, `2M`, `500k`, `1.5B` or `1e6`."""
    match = _COUNT.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (write e.g. 2000000, 2M, 500k or 1e6)")
    number, suffix = match.groups()
    mult = SUFFIXES.get(suffix.lower(), 1)
    try:  # int() keeps big plain numbers exact; float() reads 1.5 and 1e6
        value = int(number) * mult if number.replace("_", "").isdigit() else float(number) * mult
    except ValueError:
        value = 0
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is too large to be a count")
    if value != int(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(value)


def count_or_zero(text: str) -> int:
    """A count as `parse_count` reads it, or 0 (an option whose 0 turns it off)."""
    return 0 if text.strip() == "0" else parse_count(text)


def positive_int(text: str) -> int:
    """A whole number >= 1 (threads, workers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


# -- flags from dataclass fields ------------------------------------------------------------------------

@functools.cache
def field_docs(cls) -> dict[str, str]:
    """The docstring under each field of a config dataclass, as one line."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def add_fields(p, cls, flags: dict[str, str], choices: dict[str, tuple] | None = None) -> None:
    """One flag per dataclass field ({field: flag name}), with the field's type, default and docstring as its
    help; `choices` for the string fields that take one of a fixed set. The value lands under the field's name."""
    defaults, choices = cls(**_required(cls)), choices or {}
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for name, flag in flags.items():
        default = getattr(defaults, name)
        kind = {"float": float, "int": int, "str": str}[hints[name]]
        doc = field_docs(cls)[name].replace("%", "%%").rstrip(".")
        p.add_argument(f"--{flag}", dest=name, type=kind, default=default, choices=choices.get(name),
                       metavar=None if name in choices else flag.upper().replace("-", "_"),
                       help=f"{doc[:1].lower()}{doc[1:]} (default {default})")


def _required(cls) -> dict:
    """Placeholder values (1) for the fields without a default, so the defaults of the others can be read."""
    return {f.name: 1 for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}


def field_values(args, flags: dict[str, str]) -> dict:
    """The values of the flags `add_fields` declared, by field name."""
    return {name: getattr(args, name) for name in flags}


# -- shared options ----------------------------------------------------------------------------------------

def add_results(p) -> None:
    p.add_argument("--results", help="results root holding runs.db (default $SCARCE_RESULTS or ./scarce-results)")


def add_quiet(p) -> None:
    p.add_argument("--quiet", action="store_true", help="no training log lines")


def add_threads(p, help: str = "CPU threads for this process") -> None:
    p.add_argument("--threads", type=positive_int, help=help)


def workers_count(text: str) -> int:
    """--workers: `auto` (0: one per GPU, else one per CPU core) or a whole number >= 1."""
    return 0 if text == "auto" else positive_int(text)


def add_workers(p, what: str = "runs") -> None:
    """--workers, the one declaration of every command that trains many runs."""
    p.add_argument("--workers", type=workers_count, default=0, metavar="N|auto",
                   help=f"{what} at once on this machine, as processes with the cores split between them "
                        "(default auto: on GPUs, --workers-per-gpu on each; else one per CPU core, each on one thread)")
    p.add_argument("--workers-per-gpu", type=workers_count, default=None, metavar="N|auto",
                   help="runs at once on each visible GPU (default auto: from one run's measured memory and MFU "
                        "where the command knows its largest run, else 1; worker k trains on GPU k mod G)")


def workers(args, probe=None) -> int:
    """--workers, else --workers-per-gpu x the visible GPUs (`scarce.runs.gpushare.plan_workers`; `probe`
    returns the config to measure), else one per core."""
    return plan_workers(args.workers, getattr(args, "workers_per_gpu", None), probe)


def add_executor(p, what: str = "runs") -> None:
    """Where many runs go: --workers local processes, or --executor ray."""
    add_workers(p, what)
    p.add_argument("--executor", choices=EXECUTORS, default="local", help="local processes or Ray tasks")
    p.add_argument("--ray-address", help="address of an existing Ray cluster (default: start a local instance)")


def executor(args, threads: int = 0, probe=None):
    return make_executor(args.executor, workers(args, probe), args.ray_address, threads)


def execution(args, cost: dict | None = None) -> Execution:
    """The `Execution` the options name: --executor, --workers, --workers-per-gpu, --ray-address, --results and
    --no-branch where the command has them; `cost`: the device's price (`device_cost`)."""
    return Execution(args.executor, args.workers, getattr(args, "workers_per_gpu", None),
                     getattr(args, "results", None), not getattr(args, "no_branch", False),
                     ray_address=args.ray_address, cost=cost)


def add_set(p, what: str = "") -> None:
    """--set FIELD=VALUE (repeatable), parsed by `scarce.config.parse_assignment` wherever it is taken."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"override a config field{what}, e.g. optim.lr=1e-3 (repeatable; sections model, optim, "
                        "train, objective, mix, init; fields documented in scarce/config.py)")


def add_device_cost(p, flops_per_s: bool = False) -> None:
    """--gpu NAME (or, with `flops_per_s`, --flops-per-s X), --gpu-price USD and --mfu: what a device-hour is and
    costs, for the hours and dollars of `fit plan` and of the bench report."""
    device = p.add_mutually_exclusive_group()
    if flops_per_s:
        device.add_argument("--flops-per-s", type=float, metavar="X", help="one device's peak FLOP/s, for the hours "
                            "(device-hours) column")
    device.add_argument("--gpu", choices=sorted(GPU_PEAKS), help="the device whose dense bf16 peak sets the hours "
                        "(" + ", ".join(f"{k} {v / 1e12:g}T" for k, v in GPU_PEAKS.items()) + ")")
    p.add_argument("--gpu-price", type=float, metavar="USD", help="price of one device-hour, for the dollars column")
    p.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation (default 0.4)")


def device_cost(args) -> dict | None:
    """{gpu, flops_per_s, mfu, price} from `add_device_cost`'s flags; None when no device was named."""
    peak = GPU_PEAKS[args.gpu] if args.gpu else getattr(args, "flops_per_s", None)
    check_device(peak, args.mfu, args.gpu_price)
    return None if peak is None else {"gpu": args.gpu, "flops_per_s": peak, "mfu": args.mfu, "price": args.gpu_price}


def add_no_branch(p) -> None:
    """--no-branch: train every run from step 0 (`scarce.runs.branch`)."""
    p.add_argument("--no-branch", action="store_true",
                   help="train every run from step 0; by default runs of one setting that differ only in epochs share "
                        "their stable phase under a warmup-stable-decay schedule (bit-identical on CPU)")


def add_tracker(p) -> None:
    """--tracker: where each run's curves go while it trains (`scarce.track`)."""
    p.add_argument("--tracker", choices=TRACKERS, help="experiment tracker of every run: tensorboard (RUN_DIR/"
                   f"tensorboard) or wandb (WANDB_MODE=offline without network); default ${track.ENV}, else none")


def use_tracker(args) -> None:
    """A command of many runs hands --tracker to each of them (the same as setting $SCARCE_TRACKER)."""
    if args.tracker:
        os.environ[track.ENV] = args.tracker


def add_run_config(p, what: str = "the run") -> None:
    """The options that make a RunConfig: data, preset, config file, overrides, seed, horizon, threads, device."""
    p.add_argument("--data", help="token store folder made by `scarce prepare`")
    p.add_argument("--preset", default="tiny", help=f"starting config of {what} (default tiny; one of "
                                                     f"{', '.join(PRESETS)})")
    p.add_argument("--config", help="a JSON file with a full or partial config (applied after the preset)")
    add_set(p)
    p.add_argument("--seed", type=int, help="seed of init, data order and dropout")
    horizon = p.add_mutually_exclusive_group()
    horizon.add_argument("--epochs", type=float, help="horizon in epochs over the train split")
    horizon.add_argument("--tokens", type=parse_count, help="horizon in training tokens (e.g. 2M)")
    horizon.add_argument("--tokens-per-param", type=float, help="horizon as a tokens:params ratio")
    p.add_argument("--init", metavar="SOURCE", help="start from existing weights: a scarce run folder (its "
                   "select-chosen weights) or hf:NAME_OR_PATH, a Hugging Face GPT-2 or Llama model from a local "
                   "folder or the HF cache, whose architecture the run takes (continued pretraining)")
    add_threads(p)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default auto)")
    add_tracker(p)


def add_models(p, what: str = "sample from") -> None:
    """The runs to generate with: --run RUN_DIR ... or --ensemble DIR, and the device and threads."""
    p.add_argument("--run", nargs="+", metavar="RUN_DIR", help=f"run directory to {what} (several: their ensemble)")
    p.add_argument("--ensemble", metavar="DIR", help="an ensemble folder with ensemble.json (all its members)")
    add_threads(p, "CPU threads (default 1)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the models run (default auto: the GPU when there is one, with bf16 autocast)")


def model_runs(args) -> list[str]:
    """The run directories --run or --ensemble names (exactly one of them)."""
    if bool(args.run) == bool(args.ensemble):
        raise UserError("give --run RUN_DIR (one or more) or --ensemble DIR")
    return args.run or [str(m.run_dir) for m in read_ensemble(Path(args.ensemble))[0]]


SAMPLING_FLAGS = {"temperature": "temperature", "top_k": "top-k", "top_p": "top-p", "combine": "combine"}


def add_sampling(p) -> None:
    """The fields of `Sampling` (temperature, top-k, top-p, the ensemble's combine rule) and the sampler's seed."""
    add_fields(p, Sampling, SAMPLING_FLAGS, choices={"combine": COMBINES})
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler (default 0)")


def sampling(args) -> Sampling:
    check_seed(args.seed, "--seed")  # (the sampler's seed, read beside it)
    return Sampling(**field_values(args, SAMPLING_FLAGS))


SEEDS = 2**64
"""Seeds torch's generators take: 0 to 2^64 - 1."""


def check_seed(value: int | None, name: str) -> None:
    """A UserError for a seed no generator takes (torch's: 64 bits), instead of an overflow deep in torch."""
    if isinstance(value, int) and not 0 <= value < SEEDS:
        raise UserError(f"{name} {value} is not a seed: give a whole number from 0 to 2^64 - 1")


def check_out(path: str | None, flag: str) -> None:
    """A UserError unless a folder can be made (or reused) at `path`: it is not a file, nor under one."""
    if path is None:
        return
    if (why := unmakeable(path)) is not None:
        raise UserError(f"{flag} {path} {why}")


def check_file_out(path: str | None, flag: str) -> None:
    """A UserError unless a file can be written at `path`: it is not a folder, nor under a file."""
    if path is not None and (why := unmakeable(path, file=True)) is not None:
        raise UserError(f"{flag} {path} {why}")


def run_config(args) -> RunConfig:
    """The RunConfig the options of `add_run_config` describe (--data required)."""
    if not args.data:
        raise UserError("--data DIR is required: a token store made by `scarce prepare`")
    cfg = get_preset(args.preset)
    if args.config:
        cfg = merge_file(cfg, args.config)
    named = {"train.seed": args.seed, "train.threads": args.threads, "train.device": args.device,
             "init.source": args.init, "train.tracker": args.tracker}
    cfg = apply_overrides(cfg, args.overrides)  # in order: a later FIELD wins, a new horizon clears the others
    cfg = apply_overrides(cfg, {k: v for k, v in named.items() if v is not None})
    check_seed(cfg.train.seed, "--seed" if args.seed is not None else "train.seed")
    flags = args.epochs is not None or args.tokens is not None or args.tokens_per_param is not None
    if not flags:  # (a horizon flag replaces whatever --set gave)
        check_horizon(parse_assignments(args.overrides), "--set")
    if flags:
        for flag, value in (("--epochs", args.epochs), ("--tokens-per-param", args.tokens_per_param)):
            if value is not None and not 0 < value < math.inf:
                raise UserError(f"{flag} must be a finite number > 0, got {value}")
        cfg = set_horizon(cfg, args.epochs or 0.0, args.tokens or 0, args.tokens_per_param or 0.0)
        cfg = RunConfig.from_dict(cfg.to_dict())  # re-validate
    if hf.is_hf(cfg.init.source):
        fixed = [k for k in parse_assignments(args.overrides) if k in {f"model.{f}" for f in hf.ARCHITECTURE}]
        if fixed:
            raise UserError(f"{', '.join(fixed)}: set by {cfg.init.source}; a run started from a HF model keeps "
                            "its architecture")
    cfg.data = args.data
    return cfg


def merge_file(cfg: RunConfig, path: str) -> RunConfig:
    """A JSON file's sections laid over the config, field by field."""
    try:
        patch = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"config file {path} is not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"config file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(patch, dict):
        raise UserError(f"config file {path} must hold a JSON object, not a {type(patch).__name__}")
    d = cfg.to_dict()
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key].update(value)
        else:
            d[key] = value
    return RunConfig.from_dict(d)
