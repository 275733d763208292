"""Weight interpolation between two world models of one architecture (a "model soup", as in WiSE-FT).

A run continued from shipped weights with a stronger lever (session 6: action guidance distilled at w = 4.5
instead of 3) moves a figure one way and another figure the other; the straight line between the start and
the end weights stays in one basin and trades the two smoothly, so a point on it can keep most of one gain
for a part of the cost (README: the shipped checkpoint is such a point, measured along the line).
"""
from __future__ import annotations

from pathlib import Path

from matrix_sim.models.checkpoint import load_model
from matrix_sim.models.dit import WorldDiT
from matrix_sim.train.run_state import load_same_architecture


def interpolate_dits(start: str | Path, end: str | Path, weight: float, out: str | Path) -> Path:
    """Write (1 - weight) * start + weight * end (DiT folders) to the DiT folder `out`; weight in [0, 1]."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1] (0 is start, 1 is end), got {weight}")
    first = load_model(WorldDiT, start, what="interpolation start")
    last = load_same_architecture(end, WorldDiT, dict(first.config), "interpolation end", "--end")
    ends = last.state_dict()
    first.load_state_dict({k: (1.0 - weight) * v + weight * ends[k] for k, v in first.state_dict().items()})
    first.save_pretrained(out)
    return Path(out)
