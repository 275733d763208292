"""An adversarial term for the autoencoder: a patch discriminator judges the decoder's crops against the footage's.

MSE, L1 and the image-gradient term all reward the mean of what a latent could show, which is a blur: a codec
trained on them alone loses edges (eval-vae's edge density measures how many). A discriminator instead rewards a
decoder for edges that look like the footage's, as TAESD's decoder is trained. Hinge loss for the discriminator;
the generator's term is weighted adaptively, as in VQGAN (Esser et al. 2021): `weight` times the ratio of the base
loss's gradient norm to the adversarial term's at the generator's output layer, so one factor means the same
whatever the losses' scales. Off (weight 0) unless a config asks for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from matrix_sim.device import autocast
from matrix_sim.models.discriminator import PatchDiscriminator
from matrix_sim.train.distributed import Distributed, wrap_model

FIGURES = ("adversarial", "adversarial_weight", "discriminator")   # what a step's two halves report, for logs
MAX_ADAPTIVE_WEIGHT = 1e4    # VQGAN's clamp: early on, a flat adversarial gradient must not blow the term up


@dataclass(frozen=True)
class AdversarialSettings:
    """The `adversarial` section of an autoencoder config."""

    weight: float = 0.0            # 0: no discriminator, the reconstruction losses alone
    start_step: int = 0            # the discriminator trains from the first step, the generator's term joins here
    lr: float = 2e-4
    channels: list = field(default_factory=lambda: [32, 64, 128])

    def __post_init__(self) -> None:
        if self.weight < 0 or self.lr <= 0 or self.start_step < 0:
            raise ValueError(f"need weight >= 0, lr > 0 and start_step >= 0, got {self}")
        if not self.channels or any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels must be a non-empty list of positive widths, got {self.channels}")


def adaptive_weight(reconstruction: torch.Tensor, adversarial: torch.Tensor, layer: torch.Tensor) -> float:
    """|d reconstruction / d layer| / |d adversarial / d layer|: the adversarial term's gradient scaled to the
    reconstruction's at the same weights."""
    g_rec, = torch.autograd.grad(reconstruction, layer, retain_graph=True)
    g_adv, = torch.autograd.grad(adversarial, layer, retain_graph=True)
    return float((g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, MAX_ADAPTIVE_WEIGHT))


def hinge_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


class Adversary:
    """The discriminator, its optimiser, and the two halves of a step: the generator's term, the discriminator's
    update. Its state rides in the run's saved state, so a resumed run keeps its discriminator."""

    def __init__(self, settings: AdversarialSettings, output_layer: torch.Tensor, d: Distributed):
        self.settings = settings
        self.model = PatchDiscriminator(tuple(settings.channels)).to(d.device)
        self.ddp = wrap_model(self.model, d)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=settings.lr, betas=(0.5, 0.9))
        self.output_layer = output_layer
        self.device = d.device

    def _scores(self, images: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, training=True):
            return self.ddp(images).float()

    def generator_loss(self, fake: torch.Tensor, base: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        """The base loss (reconstruction) plus the weighted adversarial term on `fake` (from `start_step` on)."""
        if step < self.settings.start_step:
            return base, {}
        fooled = -self._scores(fake).mean()
        weight = self.settings.weight * adaptive_weight(base, fooled, self.output_layer)
        return base + weight * fooled, {"adversarial": fooled.item(), "adversarial_weight": weight}

    def update(self, real: torch.Tensor, fake: torch.Tensor) -> dict:
        """One discriminator step on real samples against (detached) generated ones, in one forward."""
        scores = self._scores(torch.cat([real, fake.detach()]))
        loss = hinge_discriminator_loss(scores[:len(real)], scores[len(real):])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"discriminator": loss.item()}

    def state_dict(self) -> dict:
        return {"discriminator": self.model.state_dict(), "discriminator_optimizer": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> bool:
        """Restore from a latest.pt's state; False when it holds no discriminator (a run that had none)."""
        if "discriminator" not in state:
            return False
        self.model.load_state_dict(state["discriminator"])
        self.opt.load_state_dict(state["discriminator_optimizer"])
        return True
