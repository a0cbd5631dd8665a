"""Sharded data parallelism (FSDP2, `train.parallel = fsdp`): each rank holds a shard of every parameter, gradient
and optimizer state instead of a replica (DDP), for models that do not fit replicated.

Every block is sharded on its own and the root (embeddings, head) on its own (`torch.distributed.fsdp.fully_shard`),
so a block's full weights exist only while it runs; on CUDA with bf16 the parameters are gathered in bf16 and
gradients reduced in fp32. Checkpoints stay scarce's: rank 0 writes the full (unsharded) weights and optimizer state
in the same layout a one-process run writes, so a run saved under one parallelism or world size loads under
another, and the weights load anywhere without torch.distributed.
"""

from __future__ import annotations

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

PARALLEL = ("ddp", "fsdp")
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
