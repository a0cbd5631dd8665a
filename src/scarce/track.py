"""Experiment trackers: a run's scalars, config and summary sent to TensorBoard or Weights & Biases as it trains.

One small interface (`Tracker`: `scalars`, `summary`, `close`) with a null default. `train.tracker` (or
$SCARCE_TRACKER when the field is empty) picks one:
- `none`: nothing (the default; costs one method call per log line);
- `tensorboard`: event files under RUN_DIR/tensorboard (`tensorboard --logdir` a sweep's folder shows its runs
  side by side); needs the `tensorboard` package (`pip install 'scarce[track]'`);
- `wandb`: a W&B run named by the run id, grouped by its sweep (or ensemble group), its config the resolved
  config, files under RUN_DIR/wandb; `WANDB_MODE=offline` works without network (`wandb sync` later),
  `WANDB_PROJECT` names the project (default scarce).

The tracker is an execution detail: not in the run id, and it never changes what a run computes. A tracker
that fails (a missing package, a full disk, no network) warns once on stderr and is switched off; the run goes
on.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from scarce.errors import UserError

TRACKERS = ("none", "tensorboard", "wandb")
ENV = "SCARCE_TRACKER"


class Tracker:
    """The null tracker, and the interface every tracker keeps."""

    name = "none"

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Scalars at a training step, e.g. {"train/loss": 3.2, "eval/val_loss": 3.4}."""

    def summary(self, values: dict) -> None:
        """The run's summary (the numbers of summary.json) at its end."""

    def close(self) -> None:
        pass


class TensorBoard(Tracker):
    name = "tensorboard"

    def __init__(self, run_dir: Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        self.writer.add_text("config", "```\n" + _json(config) + "\n```", 0)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def summary(self, values: dict) -> None:
        for key, value in _numbers(values).items():
            self.writer.add_scalar(f"summary/{key}", value, int(values.get("steps", 0)))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandB(Tracker):
    name = "wandb"

    def __init__(self, run_dir: Path, run_id: str, config: dict):
        import wandb

        tags = config.get("tags") or {}
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "scarce"), name=run_id,
                              group=tags.get("sweep") or tags.get("group"), dir=str(run_dir), config=config,
                              reinit="create_new")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def summary(self, values: dict) -> None:
        for key, value in _numbers(values).items():
            self.run.summary[key] = value

    def close(self) -> None:
        self.run.finish()


class Guarded(Tracker):
    """A tracker whose failures are a warning (once) and switch it off: tracking never stops a run."""

    def __init__(self, make, name: str):
        self.name, self.inner = name, None
        self._call(lambda: setattr(self, "inner", make()))

    def _call(self, fn) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - any failure of a tracker is the tracker's, not the run's
            print(f"warning: tracker {self.name} failed ({type(e).__name__}: {e}); the run goes on without it",
                  file=sys.stderr)
            self.inner = None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.inner is not None:
            self._call(lambda: self.inner.scalars(step, values))

    def summary(self, values: dict) -> None:
        if self.inner is not None:
            self._call(lambda: self.inner.summary(values))

    def close(self) -> None:
        if self.inner is not None:
            inner = self.inner
            self._call(inner.close)
            self.inner = None


def tracker_name(field: str) -> str:
    """The tracker a run uses: its train.tracker, else $SCARCE_TRACKER, else none."""
    name = field or os.environ.get(ENV, "") or "none"
    if name not in TRACKERS:
        source = "train.tracker" if field else f"${ENV}"
        raise UserError(f"{source} must be one of {', '.join(TRACKERS)}, got {name!r}")
    return name


def open_tracker(name: str, run_dir: str | Path, run_id: str, config: dict) -> Tracker:
    """The tracker `name` for one run (the null tracker for none)."""
    name = tracker_name(name)
    if name == "none":
        return Tracker()
    make = {"tensorboard": lambda: TensorBoard(Path(run_dir), config),
            "wandb": lambda: WandB(Path(run_dir), run_id, config)}[name]
    return Guarded(make, name)


def _numbers(values: dict) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _json(config: dict) -> str:
    return json.dumps(config, indent=1, sort_keys=True, default=str)
