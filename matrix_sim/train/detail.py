"""Detail matching: a loss on how much fine structure the model's one-shot estimate holds, against the mean's blur.

The flow loss is least at the mean of every frame a noisy input could come from, and that mean is softer the
noisier the input. The stream's last Euler step hands on such an estimate (from s = 1 / L), and in play each soft
frame becomes the context of the next. This term compares, per frame, channel and patch of the latent grid, the
energy of the estimate's high-pass (the latent minus its 3x3 local mean) with the true frame's, on a log scale,
weighted by 1 - s: it asks for as much detail as the frame has, not for it in the same place, so the model keeps
the structure it predicts at its true contrast instead of flattening it towards the mean.

Asked for detail it is unsure of, the model draws some from the noise, and a stopped picture then flickers from
call to call. The `change` term holds the same comparison in time: the detail energy of the estimate's change
from the frame before against the true frame's change, so a still frame's estimate repeats its predecessor and
a moving one moves as much as the real one does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ENERGY_FLOOR = 1e-3      # keeps the log finite on flat patches (latents have unit spread; detail energy ~0.01-1)


@dataclass(frozen=True)
class DetailMatch:
    """The `detail` section of a world-model config."""

    weight: float                         # of the detail term beside the flow loss
    change: float = 0.0                   # of the change term (the same on each frame's change from the one before)
    patches: tuple[int, int] = (3, 4)     # the latent grid's split (18 x 32 latents -> 6 x 8 latents a patch)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patches", tuple(int(p) for p in self.patches))
        if self.weight < 0 or self.change < 0:
            raise ValueError(f"detail.weight and detail.change must be >= 0, got {self.weight}, {self.change}")
        if len(self.patches) != 2 or min(self.patches) < 1:
            raise ValueError(f"detail.patches must be [rows, columns] >= 1, got {list(self.patches)}")


def detail_energy(latents: torch.Tensor, patches: tuple[int, int]) -> torch.Tensor:
    """(b, T, C, H, W) -> (b, T, C, rows, columns): the mean squared high-pass of each patch."""
    flat = latents.flatten(0, 1).float()
    high = flat - F.avg_pool2d(flat, 3, stride=1, padding=1, count_include_pad=False)
    energy = F.adaptive_avg_pool2d(high.pow(2), patches)
    return energy.view(*latents.shape[:3], *patches)


def detail_loss(estimate: torch.Tensor, truth: torch.Tensor, levels: torch.Tensor, mask: torch.Tensor,
                patches: tuple[int, int]) -> torch.Tensor:
    """The squared log ratio of the estimate's detail energy to the truth's, averaged over the frames in `mask`
    (b, T), each weighted by 1 - its level: low-noise estimates are the ones the stream shows."""
    ratio = torch.log(detail_energy(estimate, patches) + ENERGY_FLOOR) - \
        torch.log(detail_energy(truth, patches) + ENERGY_FLOOR)
    per_frame = ratio.pow(2).mean(dim=(2, 3, 4))
    weight = mask * (1 - levels)
    return (per_frame * weight).sum() / mask.sum().clamp(min=1)


def change_loss(estimate: torch.Tensor, truth: torch.Tensor, levels: torch.Tensor, mask: torch.Tensor,
                patches: tuple[int, int]) -> torch.Tensor:
    """detail_loss on each frame's change from the true frame before it (frames 1.. of the clip): the estimate
    changes its predecessor's detail as much as the true frame does, no more on a still picture."""
    before = truth[:, :-1]
    return detail_loss(estimate[:, 1:] - before, truth[:, 1:] - before, levels[:, 1:], mask[:, 1:], patches)
