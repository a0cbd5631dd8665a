"""The run directory: the one module that knows its layout and reads it for everyone (training,
resume, ensemble evaluation, distillation teachers, sampling, reports).

    RUN_DIR/config.json                       the resolved RunConfig (what the run computes)
    RUN_DIR/run.json                          where the run is recorded (its results root)
    RUN_DIR/metrics.jsonl                     one JSON record per log line and evaluation
    RUN_DIR/summary.json                      written when the run is complete
    RUN_DIR/checkpoints/latest.json           -> step_XXXXXXXX/ (model, optimizer, trainer state)
    RUN_DIR/checkpoints/best.safetensors      the weights chosen on the select split
    RUN_DIR/checkpoints/snapshots/*.safetensors  snapshot-ensemble members (train.snapshot_every)
    RUN_DIR/.claim                            while a process starts or continues the run: its lock file

Weights are safetensors and everything else JSON; nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from scarce import atomic
from scarce.config import RunConfig
from scarce.data.store import TokenStore, open_store
from scarce.errors import UserError
from scarce.model.gpt import GPT
from scarce.model.looping import loops_at

CONFIG = "config.json"
RUN = "run.json"
SUMMARY = "summary.json"
DIVERGED = "diverged.json"
METRICS = "metrics.jsonl"


def blocking_file(path: str | Path) -> Path | None:
    """The file that stands where `path` or a folder above it should be (so nothing can be written at
    `path`), or None."""
    for p in (Path(path), *Path(path).parents):
        if p.exists():
            return None if p.is_dir() or p == Path(path) else p
    return None


def is_run(run_dir: str | Path) -> bool:
    try:
        return (Path(run_dir) / CONFIG).is_file()
    except OSError:  # a name too long to exist
        return False


CLAIM = ".claim"


class Claimed(UserError):
    """Another process holds the run folder (it is starting, continuing or finishing the run there)."""


@contextlib.contextmanager
def claim(run_dir: str | Path, create: bool = True) -> Iterator[None]:
    """Hold `run_dir` for this process: an exclusive lock (flock, released by the kernel when the process dies,
    so a SIGKILL leaves no stale claim) on RUN_DIR/.claim. A second process is refused at once with `Claimed`,
    before it reads or writes anything of the run. The folder (and folders above it) are made when absent
    (`create`) and removed again when the claim ends with nothing else written in them."""
    run_dir = Path(run_dir)
    made = [p for p in (run_dir, *run_dir.parents) if not p.exists()] if create else []
    if not create and not run_dir.is_dir():
        yield
        return
    path = run_dir / CLAIM
    while True:
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the folder was removed by a process giving up its claim: make it again
            continue
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS) or not is_run(run_dir):
                raise
            yield  # a run in a folder nobody may write (a finished run shared read-only): nothing to hold
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise Claimed(f"{run_dir} is in use by another process (it holds {path}); wait for it to finish, "
                          "or give this run another folder") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):  # not a lock file its last holder just removed
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):  # unlinked while held: whoever opened it meanwhile tries again
            os.unlink(path)
        os.close(fd)
        for p in made:  # nothing was written: leave no empty folder behind
            try:
                p.rmdir()
            except OSError:
                break


def read_json(path: Path):
    """A JSON file the run wrote, or a one-line error naming it."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_config(run_dir: str | Path) -> RunConfig:
    """The run's resolved config (configs of earlier versions upgraded on the way in)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no {CONFIG}); check the path")
    return RunConfig.from_dict(read_json(path))


def write_config(run_dir: str | Path, cfg: RunConfig) -> None:
    atomic.write_json(Path(run_dir) / CONFIG, cfg.to_dict())


def write_run_info(run_dir: str | Path, root: str | Path, store: TokenStore) -> None:
    """run.json: the results root the run is recorded in and the sha256 of its store's tokenizer (what its
    token ids mean, for a run or a distillation that starts from it)."""
    atomic.write_json(Path(run_dir) / RUN, {"results": str(Path(root).resolve()),
                                            "tokenizer": store.manifest["tokenizer"]["sha256"]})


def results_root_of(run_dir: str | Path) -> str | None:
    """The results root the run was started with (None for runs of earlier versions)."""
    path = Path(run_dir) / RUN
    return read_json(path).get("results") if path.is_file() else None


def tokenizer_of(run_dir: str | Path) -> str | None:
    """The sha256 of the tokenizer the run was trained with: from its run.json, else (runs of earlier
    versions) from the token store its config names; None when neither can be read."""
    path = Path(run_dir) / RUN
    if path.is_file() and (sha := read_json(path).get("tokenizer")):
        return sha
    data = read_config(run_dir).data
    try:
        return open_store(data).manifest["tokenizer"]["sha256"] if data else None
    except UserError:
        return None


def check_tokenizer(run_dir: str | Path, store: TokenStore, role: str) -> None:
    """A one-line error unless the run was trained with the store's tokenizer (same ids, same merges: two
    stores of one vocabulary size can still mean other text by each id)."""
    theirs = tokenizer_of(run_dir)
    if theirs is None:
        raise UserError(f"{role} {run_dir}: cannot tell which tokenizer it was trained with (no tokenizer in its "
                        f"{RUN} and its token store cannot be opened); it must match {store.path}'s")
    if theirs != store.manifest["tokenizer"]["sha256"]:
        raise UserError(f"tokenizer mismatch: {role} {run_dir} was trained with another tokenizer than "
                        f"{store.path}'s (same ids would mean other text); use a run of a store with the same "
                        "tokenizer (`prepare --tokenizer STORE/tokenizer.json`)")


def check_same_tokenizer(run_dirs: list) -> None:
    """A one-line error when runs combined into one ensemble were trained with different tokenizers
    (one vocabulary size is not enough: the ids of another tokenizer mean other text). Runs whose
    tokenizer cannot be told are not compared."""
    known = [(d, sha) for d in run_dirs if (sha := tokenizer_of(d)) is not None]
    for d, sha in known[1:]:
        if sha != known[0][1]:
            raise UserError(f"tokenizer mismatch: {known[0][0]} and {d} were trained with different tokenizers "
                            "(same ids would mean other text); an ensemble combines runs of one tokenizer")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of a run's metrics.jsonl ([] when it has none); a damaged line (cut short, not JSON) is
    skipped with a warning on stderr rather than failing a report over one record."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    records, damaged = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line) if line.strip() else None
        except ValueError:
            record = None
            damaged += 1
        if isinstance(record, dict):
            records.append(record)
        elif record is not None:
            damaged += 1
    if damaged:
        print(f"warning: skipped {damaged} damaged line(s) of {path}", file=sys.stderr)
    return records


def read_summary(run_dir: str | Path) -> dict | None:
    """The summary of a complete run, None while it is not complete."""
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        return None
    if not isinstance(summary := read_json(path), dict):
        raise UserError(f"{path} holds a JSON {type(summary).__name__}, not the object a run writes (damaged); "
                        f"`scarce train --resume {run_dir}` writes it again")
    return summary


def write_diverged(run_dir: str | Path, run_id: str, step: int, error: str) -> None:
    """Mark a run as diverged (its settings do not train): the result a sweep keeps for it, in place of
    a summary; `step` is the last step that trained, and its last good checkpoint stays."""
    atomic.write_json(Path(run_dir) / DIVERGED, {"status": "diverged", "run_id": run_id, "step": step,
                                                 "error": error})


def read_diverged(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / DIVERGED
    return read_json(path) if path.is_file() else None


BRANCHES = "branches"
"""Checkpoints a run keeps for shorter runs of its setting to continue from (train.branch_steps)."""


BRANCH_RECORD = "branch.json"
"""In a branched run's folder: the run it continued from, the step, and that run's wall seconds up to it (part of
the branched run's own wall_seconds, trained once)."""


def own_seconds(summary: dict) -> float:
    """A run's wall seconds less what it inherited from the run it branched from (the compute it cost itself)."""
    return (summary.get("wall_seconds") or 0.0) - (summary.get("branched_from") or {}).get("wall_seconds", 0.0)


def branch_checkpoint(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / BRANCHES / f"step_{step:08d}"


def best_weights(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints" / "best.safetensors"


BEST_VAL_WINDOWS = "best_val_windows.npz"
"""Beside the best weights: the summed val NLL of each window at the evaluation that chose them, with that step,
the val split's sha256 and the window length, so a paired bootstrap reads them instead of evaluating again."""


def best_val_windows_path(run_dir: str | Path) -> Path:
    return best_weights(run_dir).parent / BEST_VAL_WINDOWS


def best_val_windows(run_dir: str | Path, step: int, val_sha256: str, seq_len: int) -> np.ndarray | None:
    """The per-window val NLL of the run's best weights, if written for this step, val split and window length
    (else None: weights inherited from a branch's trunk, an older run, a val split capped by train.eval_tokens)."""
    path = best_val_windows_path(run_dir)
    try:
        with np.load(path) as f:
            if (int(f["step"]) == step and str(f["val_sha256"]) == val_sha256 and int(f["seq_len"]) == seq_len):
                return np.array(f["window_nll"], dtype=np.float64)
    except (OSError, ValueError, KeyError):
        pass
    return None


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / "snapshots" / f"step_{step:08d}.safetensors"


def snapshots(run_dir: str | Path) -> list[Path]:
    return sorted((Path(run_dir) / "checkpoints" / "snapshots").glob("*.safetensors"))


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_weights(path: Path, state: dict[str, torch.Tensor], loops: int = 0, flops: float | None = None) -> None:
    """Weights as safetensors, with the digest of the tensors in the file's own metadata (so the file and
    its digest are written in one atomic rename), the looped passes the weights were evaluated with and, for a
    snapshot, the run's training FLOPs up to it (`flops`)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    meta = {"sha256": tensors_digest(tensors), "loops": str(loops)}
    if flops is not None:
        meta["flops"] = repr(float(flops))

    def write(tmp: str) -> None:
        save_file(tensors, tmp, metadata=meta)
        sort_metadata(tmp)

    atomic.atomic_write(path, write)


def sort_metadata(path: str | Path) -> None:
    """Rewrite a safetensors file's header with its metadata in name order, in place. safetensors writes the
    metadata map in hash order, which differs between processes, so two runs of one config would write the same
    tensors and digest as files of different sha256; users compare checkpoints by file hash."""
    with open(path, "r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        if "__metadata__" in header:
            header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        assert len(text) <= size, "the same header in another order has the same length"
        f.seek(8)
        f.write(text.ljust(size))  # padded with spaces as safetensors pads it (to 8-byte alignment)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, checked against the digest in its metadata when it has one."""
    if not Path(path).is_file():
        raise UserError(f"checkpoint file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            want = (f.metadata() or {}).get("sha256")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"checkpoint {path} is corrupt or truncated ({str(e).splitlines()[0][:120]})") from None
    if want is not None and tensors_digest(tensors) != want:
        raise UserError(f"checkpoint {path} is damaged: its tensors do not match the digest written with them")
    return tensors


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load weights into a model, or a one-line error when they belong to another architecture."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} where the model has {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    problems = ([f"{len(missing)} tensors missing (first {missing[0]})"] if missing else []) + \
        ([f"{len(unexpected)} unexpected (first {unexpected[0]})"] if unexpected else []) + \
        ([f"{len(shapes)} of other shapes (first {shapes[0]})"] if shapes else [])
    if problems:
        raise UserError(f"weights from {source} do not fit the model: {'; '.join(problems)}; the architecture "
                        "(model.*) must be the one they were trained with")
    model.load_state_dict(state)


@dataclass(frozen=True)
class Member:
    """A set of weights of a run: its select-chosen weights by default, or one snapshot."""

    run_dir: Path
    weights: Path

    @classmethod
    def of_run(cls, run_dir: str | Path) -> Member:
        return cls(Path(run_dir), best_weights(run_dir))

    def load(self, device: str = "cpu") -> GPT:
        """The model in inference mode, gradients off, with the looped passes it was evaluated with in training."""
        cfg = read_config(self.run_dir)
        model = GPT(cfg.model)
        load_state(model, load_weights(self.weights), self.weights)
        model.loops = self.loops(cfg)
        return model.to(device).eval().requires_grad_(False)

    def flops(self) -> float | None:
        """Training FLOPs spent on these weights: a snapshot's, written beside it (the run up to it); for a run's
        own weights its whole training (summary.json: they were chosen after it); None where neither says
        (snapshots written before it was recorded)."""
        with safe_open(str(self.weights), framework="pt") as f:
            written = (f.metadata() or {}).get("flops")
        if written is not None:
            return float(written)
        if self.weights.parent.name != "snapshots" and (self.run_dir / SUMMARY).is_file():
            flops = read_json(self.run_dir / SUMMARY).get("flops")
            return float(flops) if isinstance(flops, (int, float)) else None
        return None

    def loops(self, cfg: RunConfig) -> int:
        """Extra looped passes of these weights: as written beside them; for weights saved before that was
        written, the passes at the step that produced them (the best step in summary.json, a snapshot's name)."""
        if cfg.model.loop_range is None:
            return 0
        with safe_open(str(self.weights), framework="pt") as f:
            written = (f.metadata() or {}).get("loops")
        if written is not None:
            return int(written)
        summary = read_json(self.run_dir / SUMMARY) if (self.run_dir / SUMMARY).is_file() else {}
        step = int(self.weights.stem.split("_")[-1]) if self.weights.parent.name == "snapshots" else summary.get("best_step")
        if not isinstance(step, int) or not isinstance(summary.get("steps"), int):
            return cfg.model.loop_extra  # no record of the step: the end of training, where looping is on
        return loops_at(cfg.model, max(step - 1, 0), summary["steps"])


def load_model(run_dir: str | Path, device: str = "cpu") -> GPT:
    """A run's select-chosen weights as a model in inference mode."""
    return Member.of_run(run_dir).load(device)


def snapshot_members(run_dir: str | Path) -> list[Member]:
    """Every snapshot a run kept (train.snapshot_every), in step order: the members of a snapshot ensemble."""
    if not is_run(run_dir):
        raise UserError(f"{run_dir} is not a run directory (no {CONFIG}), so it has no snapshots; check the path")
    files = snapshots(run_dir)
    if not files:
        raise UserError(f"{run_dir} has no snapshots (checkpoints/snapshots/*.safetensors); "
                        "train it with train.snapshot_every or list member runs instead")
    return [Member(Path(run_dir), f) for f in files]
