"""Checkpoints: safetensors for tensors, JSON for everything else; never pickle.

A checkpoint is a folder `checkpoints/step_XXXXXXXX/` holding `model.safetensors`,
`optim.safetensors` and `state.json` (with the sha256 of both tensor files). It is written under a
temporary name and renamed into place, then `checkpoints/latest.json` is pointed at it (also
atomically), so a kill at any moment leaves the previous checkpoint intact. The last `keep` checkpoints
stay; resume takes the newest one whose files match their digests and says so when it falls back. The rest of the run directory's layout is `scarce.rundir`'s.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from scarce import atomic
from scarce.atomic import sha256_file
from scarce.errors import UserError
from scarce.rundir import load_weights


def optimizer_to_flat(optimizer: torch.optim.Optimizer | dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state dict (or the dict itself) into tensors (for safetensors) and JSON metadata."""
    sd = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state_keys": {}}
    for idx, state in sd["state"].items():
        keys = []
        for name, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{idx}.{name}"] = t
            keys.append(name)
        meta["state_keys"][str(idx)] = keys
    return tensors, meta


def flat_to_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """The optimizer state dict `optimizer_to_flat` split."""
    state = {int(idx): {name: tensors[f"{idx}.{name}"] for name in keys} for idx, keys in meta["state_keys"].items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    try:
        optimizer.load_state_dict(flat_to_state(tensors, meta))
    except (ValueError, KeyError) as e:
        raise UserError(f"optimizer state does not match the model ({e}); the checkpoint is from another config") from None


def save_checkpoint(run_dir: Path, step: int, model_state: dict, optimizer, trainer_state: dict, keep: int = 2,
                    folder: str = "checkpoints") -> Path:
    """A checkpoint of `step` under RUN_DIR/folder/step_N (written to a temporary name, renamed), recorded as the
    folder's latest; all but the newest `keep` are deleted (keep 0: none)."""
    ckdir = Path(run_dir) / folder
    ckdir.mkdir(parents=True, exist_ok=True)
    final = ckdir / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step_{step:08d}.", dir=ckdir))
    tmp.chmod(0o755)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in model_state.items()}, str(tmp / "model.safetensors"))
        opt_tensors, opt_meta = optimizer_to_flat(optimizer)
        save_file({k: v.contiguous().cpu() for k, v in opt_tensors.items()}, str(tmp / "optim.safetensors"))
        digests = {name: sha256_file(tmp / name) for name in TENSOR_FILES}
        state = {"step": step, "optimizer": opt_meta, "digests": digests, **trainer_state}
        state["state_sha256"] = _state_digest(state)
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic.write_json(ckdir / "latest.json", {"step": step, "dir": final.name})
    _prune(ckdir, keep)
    return final


def _prune(ckdir: Path, keep: int) -> None:
    steps = sorted(p for p in ckdir.glob("step_*") if p.is_dir())
    for p in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


TENSOR_FILES = ("model.safetensors", "optim.safetensors")


def load_checkpoint(run_dir: Path, log=print) -> tuple[dict, dict, dict] | None:
    """(model tensors, optimizer tensors, state) of the newest checkpoint that verifies, or None when the
    run has none. A damaged newest checkpoint is reported and the one before it taken."""
    ckdir = Path(run_dir) / "checkpoints"
    folders = sorted((p for p in ckdir.glob("step_*") if p.is_dir()), reverse=True)
    if not folders and not (ckdir / "latest.json").exists():
        return None
    problems = []
    for folder in folders:
        try:
            loaded = load_verified(folder)
        except UserError as e:
            problems.append(str(e))
            continue
        if problems:
            log(f"warning: {'; '.join(problems)}; resuming from {folder.name} instead")
        return loaded
    why = "; ".join(problems) or "no checkpoint folder"
    raise UserError(f"no usable checkpoint in {ckdir} ({why}); start the run again in another folder")


def _state_digest(state: dict) -> str:
    """sha256 of the trainer state's canonical JSON (its own digest left out)."""
    body = {k: v for k, v in state.items() if k != "state_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def load_verified(folder: Path) -> tuple[dict, dict, dict]:
    """(model tensors, optimizer tensors, state) of one checkpoint folder, or a UserError naming the file that
    does not match its digest."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"checkpoint {folder.name} is incomplete ({e})") from None
    if not isinstance(state, dict) or state.get("state_sha256", _state_digest(state)) != _state_digest(state):
        raise UserError(f"checkpoint {folder.name}: state.json does not match its digest (damaged)")
    state.pop("state_sha256", None)
    for name, want in state.get("digests", {}).items():  # checkpoints of earlier versions have none
        path = folder / name
        if not path.is_file() or sha256_file(path) != want:
            raise UserError(f"checkpoint {folder.name}: {name} does not match its digest (damaged)")
    return load_weights(folder / "model.safetensors"), load_weights(folder / "optim.safetensors"), state
