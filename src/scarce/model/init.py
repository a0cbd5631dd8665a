"""Initial weights (`model.init`): GPT-2's, or NanoGPT Slowrun's (record line 14, 'c_proj init from zero to
normal').

The record draws the blocks' input matrices uniform in +-sqrt(3)/sqrt(d) (std 1/sqrt(d), the scale that keeps a
unit-RMS input at unit RMS) and the output projections that write into the residual stream N(0, 1/sqrt(d)).
Its embedding N(0, 1) and head N(0, 0.001) follow a norm after the embedding lookup that scarce does not have, so
the embedding and head keep GPT-2's N(0, 0.02) here. The knobs' own inits (zero gates, unit lambdas) run after
either (`init_weights` of each module).
"""

from __future__ import annotations

import math
import re

from torch import nn

OUTPUT_PROJECTION = re.compile(r"blocks\.\d+\.(attn|mlp)\.proj\.weight")
"""The matrices that write a block's attention or MLP output into the residual stream."""
OUTSIDE_BLOCKS = ("embed.", "pos.", "head.")


def init_gpt2(model: nn.Module, depth: int) -> None:
    """N(0, 0.02) for every weight, projections scaled by 1/sqrt(2 x depth), biases zero."""
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            nn.init.zeros_(p)
            continue
        std = 0.02
        if name.endswith("proj.weight"):
            std = 0.02 / math.sqrt(2 * depth)
        nn.init.normal_(p, mean=0.0, std=std)


def init_record(model: nn.Module, depth: int, width: int) -> None:
    """GPT-2's init, then the record's for the matrices of the blocks (and of the multi-token head)."""
    init_gpt2(model, depth)
    bound = math.sqrt(3 / width)
    for name, p in model.named_parameters():
        if p.dim() != 2 or name.startswith(OUTSIDE_BLOCKS):
            continue
        if OUTPUT_PROJECTION.fullmatch(name):
            nn.init.normal_(p, mean=0.0, std=1 / math.sqrt(width))
        else:
            nn.init.uniform_(p, -bound, bound)
