"""A deeper WorldDiT that starts as exactly the shallower trained one it grows from.

The tiny model's capacity may be what holds issue 4's figures, and a bigger model trained from scratch needs
far more steps than 2 CPU cores give. Depth can grow without losing what was learned: a WorldBlock whose
adaLN-Zero modulation is zero (as a new block is built) adds nothing to the residual stream, so the trained
blocks keep their order, spread evenly among new identity blocks, and the deeper model computes the same
function until training moves the new blocks' gates off zero.
"""
from __future__ import annotations

import torch

from matrix_sim.models.checkpoint import CheckpointError, config_differences
from matrix_sim.models.dit import WorldDiT

BLOCKS = "blocks."


def block_positions(old_depth: int, new_depth: int) -> list[int]:
    """Where each trained block goes in the deeper stack: spread evenly, first and last blocks included when
    there is room, in their order (4 -> 6: 0, 2, 3, 5; the new blocks at 1 and 4)."""
    if not 0 < old_depth <= new_depth:
        raise ValueError(f"cannot grow depth {old_depth} into {new_depth}")
    return [round((i + 0.5) * new_depth / old_depth - 0.5) for i in range(old_depth)]


def deepens(shallow: dict, architecture: dict) -> bool:
    """Whether `architecture` is `shallow`'s (both full WorldDiT configs) with more blocks and nothing else."""
    others = [d for d in config_differences(shallow, architecture) if not d.startswith("depth:")]
    return not others and architecture["depth"] > shallow["depth"]


def load_deeper(model: WorldDiT, shallow: WorldDiT) -> list[int]:
    """Copy `shallow`'s weights into the deeper `model` and make its other blocks identity; returns the
    positions the trained blocks took. Refused unless the two differ in depth alone, deeper."""
    if not deepens(dict(shallow.config), dict(model.config)):
        raise CheckpointError("a deeper model grows from one that differs only in depth: "
                              + "; ".join(config_differences(dict(shallow.config), dict(model.config))))
    positions = block_positions(shallow.config.depth, model.config.depth)
    state = {}
    for name, tensor in shallow.state_dict().items():
        if name.startswith(BLOCKS):
            index, rest = name[len(BLOCKS):].split(".", 1)
            name = f"{BLOCKS}{positions[int(index)]}.{rest}"
        state[name] = tensor
    model.load_state_dict(state, strict=False)      # same config but depth: only the new blocks are left out
    for index, block in enumerate(model.blocks):
        if index not in positions:                  # identity: adaLN-Zero's gates (and shifts, scales) at zero
            torch.nn.init.zeros_(block.modulation[1].weight)
            torch.nn.init.zeros_(block.modulation[1].bias)
    return positions
