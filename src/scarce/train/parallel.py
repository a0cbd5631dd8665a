"""How a run spreads over processes, as a strategy the trainer calls (`strategy`): one process as it is (`Single`),
replicas with averaged gradients (`DDP`, any run under torchrun), or sharded data parallelism (`FSDP`,
`train.parallel = fsdp`).

FSDP (FSDP2): each rank holds a shard of every parameter, gradient and optimizer state instead of a replica, for
models that do not fit replicated. Every block is sharded on its own and the root (embeddings, head) on its own
(`torch.distributed.fsdp.fully_shard`), so a block's full weights exist only while it runs; on CUDA with bf16 the
parameters are gathered in bf16 and gradients reduced in fp32. Checkpoints stay scarce's: rank 0 writes the full
(unsharded) weights and optimizer state in the same layout a one-process run writes, so a run saved under one
parallelism or world size loads under another, and the weights load anywhere without torch.distributed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from scarce import rundir
from scarce.config import RunConfig
from scarce.errors import UserError
from scarce.train import checkpoint as ckpt
from scarce.train.runtime import Runtime

GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)
"""Full tensors, on the CPU of rank 0 (the other ranks take part in the gathers and get nothing)."""
LOAD = StateDictOptions(full_state_dict=True)
"""Every rank holds the full state it read from the checkpoint and keeps its shard of it."""


def shard(model: nn.Module, bf16: bool) -> None:
    """Shard each block, then the root (in place): the forward gathers one block's weights at a time."""
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
    for block in model.blocks:
        fully_shard(block, mp_policy=mp)
    fully_shard(model, mp_policy=mp)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full weights (a collective: every rank calls it; rank 0 gets them)."""
    return get_model_state_dict(model, options=GATHER)


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The full optimizer state in `optimizer.state_dict()`'s layout (parameters numbered in group order), as a
    one-process run of the same config would save it (a collective; rank 0 gets the tensors)."""
    sd = get_optimizer_state_dict(model, optimizer, options=GATHER)
    if not sd:  # a rank other than 0 takes part in the gathers and keeps nothing
        return {}
    number, groups = {}, []
    for g in sd["param_groups"]:
        groups.append({**g, "params": [number.setdefault(name, len(number)) for name in g["params"]]})
    return {"state": {number[name]: s for name, s in sd["state"].items()}, "param_groups": groups}


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optim_state: dict) -> None:
    """Give each rank its shard of a full checkpoint (weights, and optimizer state in `state_dict()` layout)."""
    set_model_state_dict(model, model_state, options=LOAD)
    names = {id(p): name for name, p in model.named_parameters()}
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    groups = [{**g, "params": [order[i] for i in g["params"]]} for g in optim_state["param_groups"]]
    state = {order[int(i)]: s for i, s in optim_state["state"].items()}
    set_optimizer_state_dict(model, optimizer, {"state": state, "param_groups": groups}, options=LOAD)


def full(t: torch.Tensor) -> torch.Tensor:
    """A sharded tensor's full value (a collective), a plain tensor as it is."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def like(update: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """A full tensor every rank computed alike, as the shard of it that `p` holds (no communication)."""
    if not isinstance(p, DTensor):
        return update
    return distribute_tensor(update, p.device_mesh, p.placements, src_data_rank=None)


class Single:
    """One process: the model is trained, saved and restored as it is."""

    def prepare(self, model: nn.Module) -> None:
        """Change `model` in place before its optimizer is built."""

    def forward(self, model: nn.Module) -> nn.Module:
        """The module the training step calls."""
        return model

    def compile_setting(self, setting: bool | str) -> bool | str:
        """train.compile as this strategy allows it."""
        return setting

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The full weights to save (every rank calls it; rank 0 writes them)."""
        return model.state_dict()

    def full_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, torch.optim.Optimizer | dict]:
        """The weights and optimizer state to save, whole."""
        return model.state_dict(), optimizer

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, opt_tensors: dict,
             opt_meta: dict, where: Path) -> None:
        """Restore a checkpoint's full weights and flat optimizer state (`where` names it in errors)."""
        rundir.load_state(model, model_state, where)
        ckpt.optimizer_from_flat(optimizer, opt_tensors, opt_meta)


class DDP(Single):
    """Replicas under torchrun: gradients averaged across ranks (each its own windows); saved as one process."""

    def forward(self, model: nn.Module) -> nn.Module:
        return torch.nn.parallel.DistributedDataParallel(model)


class FSDP(Single):
    """Sharded over the ranks (module docstring); saving gathers the full state to rank 0 (a collective)."""

    def __init__(self, bf16: bool):
        self.bf16 = bf16  # parameters gathered in bf16, gradients reduced in fp32

    def prepare(self, model: nn.Module) -> None:
        shard(model, self.bf16)

    def compile_setting(self, setting: bool | str) -> bool | str:
        return False  # not compiled yet: 'auto' is off, and check_shardable refuses anything else

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return full_model_state(model)

    def full_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        return full_model_state(model), full_optimizer_state(model, optimizer)

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, opt_tensors: dict,
             opt_meta: dict, where: Path) -> None:
        load_full_state(model, optimizer, model_state, ckpt.flat_to_state(opt_tensors, opt_meta))


def strategy(cfg: RunConfig, rt: Runtime) -> Single:
    """The run's parallelism: FSDP where train.parallel says so (checked first), DDP for any other run under
    torchrun, else one process."""
    if cfg.train.parallel == "fsdp":
        check_shardable(cfg, rt)
        return FSDP(rt.precision == "bf16" and rt.device == "cuda")
    return DDP() if rt.distributed else Single()


def check_shardable(cfg: RunConfig, rt: Runtime) -> None:
    """A one-line error for train.parallel=fsdp where it cannot run."""
    if not rt.distributed:
        raise UserError("train.parallel=fsdp shards the model over the ranks of a process group: launch with "
                        "torchrun --nproc_per_node N (N >= 2), or use train.parallel=ddp")
    if cfg.optim.ema_decay or cfg.optim.avg_last:
        raise UserError("train.parallel=fsdp does not average weights yet (optim.ema_decay, optim.avg_last): "
                        "use train.parallel=ddp")
    if cfg.train.compile not in (False, "auto"):
        raise UserError("train.parallel=fsdp is not compiled yet: set train.compile=false")
    if cfg.optim.perturb or cfg.objective.kind == "chain":
        raise UserError("train.parallel=fsdp does not perturb weights or chain cycles yet (optim.perturb, "
                        "objective.kind=chain): use train.parallel=ddp")
