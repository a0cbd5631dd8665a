"""`scarce train`: train one model on a token store, or resume a killed run."""

from __future__ import annotations

import json
from pathlib import Path

from scarce.errors import UserError


def add_parser(sub) -> None:
    from scarce.config import PRESETS

    p = sub.add_parser(
        "train", help="train a model on a token store (or --resume a run)",
        description="Train one model on a token store and record it in the run store. Any config field can be "
                    "overridden with --set section.field=value (sections: model, optim, train; value parsed as "
                    "JSON, e.g. --set optim.weight_decay=1.3 --set model.dropout=0.1).",
    )
    p.add_argument("--data", help="token store folder made by `scarce prepare`")
    p.add_argument("--preset", default="tiny", help=f"starting config (default tiny; one of {', '.join(PRESETS)})")
    p.add_argument("--config", help="a JSON file with a full or partial config (applied after the preset)")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument("--epochs", type=float, help="horizon in epochs over the train split")
    p.add_argument("--tokens", type=float, help="horizon in training tokens")
    p.add_argument("--tokens-per-param", type=float, help="horizon as a tokens:params ratio")
    p.add_argument("--seed", type=int, help="seed of init, data order and dropout")
    p.add_argument("--threads", type=int, help="CPU threads for this process")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default auto)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. optim.lr=1e-3 (repeatable)")
    p.add_argument("--results", help="results root holding runs.db (default $SCARCE_RESULTS or ./scarce-results)")
    p.add_argument("--quiet", action="store_true", help="no log lines")
    p.set_defaults(func=run)


def build_config(args):
    from scarce.config import RunConfig, apply_overrides, get_preset, set_horizon

    cfg = get_preset(args.preset)
    if args.config:
        cfg = _merge_file(cfg, args.config)
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.threads is not None:
        overrides.append(f"train.threads={args.threads}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    cfg = apply_overrides(cfg, overrides)
    horizons = [h for h in (args.epochs, args.tokens, args.tokens_per_param) if h is not None]
    if len(horizons) > 1:
        raise UserError("give at most one of --epochs, --tokens, --tokens-per-param")
    if horizons:
        cfg = set_horizon(cfg, args.epochs or 0.0, int(args.tokens or 0), args.tokens_per_param or 0.0)
        cfg = RunConfig.from_dict(cfg.to_dict())  # re-validate
    cfg.data = args.data
    return cfg


def _merge_file(cfg, path: str):
    from scarce.config import RunConfig

    try:
        patch = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"config file {path} is not valid JSON ({e})") from None
    d = cfg.to_dict()
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key].update(value)
        else:
            d[key] = value
    return RunConfig.from_dict(d)


def run(args) -> int:
    from scarce.train.trainer import resume, train

    if args.resume:
        if args.out or args.data:
            raise UserError("--resume takes the run directory alone; drop --out/--data")
        resume(args.resume, args.results, args.quiet)
        return 0
    if not args.out:
        raise UserError("--out RUN_DIR is required (or --resume RUN_DIR)")
    if not args.data:
        raise UserError("--data DIR is required: a token store made by `scarce prepare`")
    train(build_config(args), args.out, args.results, args.quiet)
    return 0
