"""The inverse-dynamics probe (matrix_sim.models.probe) as `eval` uses it: the trained checkpoint and the chance
level its accuracy is read against (training it: matrix_sim.train.probe)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from matrix_sim.config import CHECKPOINT_DIR
from matrix_sim.models.checkpoint import load_model
from matrix_sim.models.probe import InverseDynamicsProbe

DEFAULT_PROBE_DIR = CHECKPOINT_DIR / "probe"


def load_probe(path: str | Path = DEFAULT_PROBE_DIR, device: torch.device | str = "cpu") -> InverseDynamicsProbe:
    """The trained probe in eval mode; a missing or mismatched checkpoint is a CheckpointError naming the file."""
    model = load_model(InverseDynamicsProbe, path, what="inverse-dynamics probe")
    return model.to(device).eval().requires_grad_(False)


def majority_rate(labels: dict) -> dict[str, float]:
    """Accuracy of always answering each head's most common class: the chance level to beat."""
    rates = {h: float(np.bincount(np.asarray(v), minlength=3).max() / max(len(v), 1)) for h, v in labels.items()}
    return {**rates, "mean": float(np.mean(list(rates.values())))}
