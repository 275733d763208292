"""Action guidance distilled into the world model: the guided stream at the cost of one forward.

Guidance at inference (StreamConfig.action_guidance, w) runs the window twice, with the actions and with the
idle action, and takes v(idle) + w * (v(action) - v(idle)) = v(action) + (w - 1) * (v(action) - v(idle)): it
makes the model follow actions more closely for twice the DiT time, which a 2-core CPU cannot pay at 16
frames/s. Distillation moves the guided difference into the training target instead: each scored frame's v =
noise - x0 gets (w - 1) * (v_T(action) - v_T(idle)) added, where v_T is a frozen teacher (the weights the run
starts from) at the same noisy input, its scored frames' actions set to idle. The teacher must stay frozen: a
model that guided itself would amplify its own action difference every step (its fixed point is 1 / (2 - w)
times the data's, which diverges for w >= 2).

`unguided` names action fields the reference keeps instead of zeroing, so their difference is learned as the
teacher has it, not exaggerated: braking in a scene that has stopped moving should change nothing, but the
teacher's small brake-vs-idle difference, multiplied by w - 1 in every call and landing on the same pixels call
after call, grows streaks over a stopped player's picture (eval's `still_scene` measures it).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from matrix_sim.actions import ACTION_FIELDS
from matrix_sim.device import autocast
from matrix_sim.models.dit import WorldDiT
from matrix_sim.stream import bundle
from matrix_sim.train.run_state import load_same_architecture

# what a teacher shares with its student: the latents, actions and prompts it reads and the v it writes
TEACHER_INTERFACE = ("in_channels", "patch_size", "action_dim", "prompt_dim")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuidanceDistill:
    """The `guidance` section of a world-model config."""

    scale: float                 # w: the inference-time action guidance the model learns to stand in for
    teacher: str                 # a bundle (or DiT folder) whose DiT is the frozen teacher
    unguided: tuple[str, ...] = ()   # action fields the reference keeps: their difference is not exaggerated

    def __post_init__(self) -> None:
        if self.scale < 1.0:
            raise ValueError(f"guidance.scale must be >= 1 (1 adds nothing), got {self.scale}")
        if isinstance(self.unguided, str):
            raise ValueError(f"guidance.unguided must be a list of action fields, e.g. [brake], got {self.unguided!r}")
        object.__setattr__(self, "unguided", tuple(self.unguided))
        unknown = [f for f in self.unguided if f not in ACTION_FIELDS]
        if unknown:
            raise ValueError(f"guidance.unguided: unknown action field(s) {unknown}; the fields are {list(ACTION_FIELDS)}")

    def guided_fields(self) -> torch.Tensor:
        """(A,) bool: the action fields the reference sets to idle."""
        return torch.tensor([f not in self.unguided for f in ACTION_FIELDS])


class GuidanceTeacher:
    """The frozen teacher; `target_shift` is what the guided target adds to v = noise - x0."""

    def __init__(self, settings: GuidanceDistill, architecture: dict, device: torch.device):
        path = Path(settings.teacher)
        dit_dir = path / bundle.DIT_DIR if (path / bundle.DIT_DIR).is_dir() else path
        interface = {k: v for k, v in architecture.items() if k in TEACHER_INTERFACE}   # its size may differ
        self.model = load_same_architecture(dit_dir, WorldDiT, interface, "guidance teacher", "guidance.teacher")
        self.model.to(device).eval().requires_grad_(False)
        self.scale, self.device = settings.scale, device
        self.guided = settings.guided_fields().to(device)
        log.info("distilling action guidance w = %g from the frozen teacher %s%s", self.scale, dit_dir,
                 f" (not on {', '.join(settings.unguided)})" if settings.unguided else "")

    @torch.no_grad()
    def target_shift(self, noisy: torch.Tensor, levels: torch.Tensor, actions: torch.Tensor, prompts: torch.Tensor,
                     scored: torch.Tensor) -> torch.Tensor:
        """(w - 1) * (v_T(actions) - v_T(reference)), float32, shaped like `noisy`; one batched forward of both.
        The reference is idle on the scored frames (B, T) bool, the frames the loss is taken on, but for the
        unguided fields."""
        idle = actions.masked_fill(scored[..., None] & self.guided, 0.0)
        with autocast(self.device, training=True):
            v = self.model(torch.cat([noisy, noisy]), torch.cat([levels, levels]), torch.cat([actions, idle]),
                           torch.cat([prompts, prompts])).float()
        with_actions, with_idle = v.chunk(2)
        return (self.scale - 1.0) * (with_actions - with_idle)
