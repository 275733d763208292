"""The decoder's adversarial term: its balance, the discriminator's loss and learning, and a run that keeps it."""
import logging

import pytest
import torch
import torch.nn.functional as F
import yaml

from matrix_sim.config import ConfigError
from matrix_sim.models.discriminator import PatchDiscriminator
from matrix_sim.train.adversarial import Adversary, AdversarialSettings, adaptive_weight, hinge_discriminator_loss
from matrix_sim.train.distributed import Distributed
from matrix_sim.train.vae import load_vae_config

from vae_helpers import tiny_config

CPU = Distributed(0, 1, torch.device("cpu"))


def test_patch_discriminator_scores_each_patch():
    scores = PatchDiscriminator((8, 16))(torch.zeros(2, 3, 32, 64))
    assert scores.shape == (2, 1, 8, 16)


def test_adaptive_weight_is_the_ratio_of_gradient_norms_at_the_layer():
    layer = torch.nn.Parameter(torch.randn(4, 3))
    reconstruction = (3.0 * layer).sum()             # gradient 3 everywhere
    adversarial = (0.5 * layer).sum()                # gradient 0.5 everywhere
    assert adaptive_weight(reconstruction, adversarial, layer) == pytest.approx(6.0, rel=1e-3)


def test_hinge_loss_is_zero_only_past_the_margins():
    assert hinge_discriminator_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0.0
    assert hinge_discriminator_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(2.0)


def _stripes(n: int) -> torch.Tensor:
    """Sharp vertical stripes of random phase, in [-1, 1]: 'footage' with edges."""
    x = torch.arange(32).float()
    phase = torch.randint(0, 8, (n, 1, 1, 1)).float()
    return torch.where(((x + phase) // 4) % 2 == 0, 1.0, -1.0).expand(n, 3, 32, 32).clone()


def test_the_discriminator_learns_to_tell_sharp_footage_from_blur():
    torch.manual_seed(0)
    adversary = Adversary(AdversarialSettings(weight=1.0, lr=2e-3, channels=[8, 16]), torch.nn.Parameter(torch.ones(1)),
                          CPU)
    blur = lambda x: F.avg_pool2d(x, 5, stride=1, padding=2)      # noqa: E731  what an MSE decoder makes
    for _ in range(60):
        real = _stripes(8)
        adversary.update(real, blur(real))
    real = _stripes(16)
    with torch.no_grad():
        assert adversary.model(real).mean() > adversary.model(blur(real)).mean() + 0.5


def test_the_decoder_term_joins_at_its_start_step():
    layer = torch.nn.Parameter(torch.randn(3, 3, 3, 3))
    adversary = Adversary(AdversarialSettings(weight=0.5, start_step=10, channels=[8]), layer, CPU)
    recon = F.conv2d(torch.randn(2, 3, 16, 16), layer, padding=1)
    reconstruction = recon.square().mean()
    before, stats = adversary.generator_loss(recon, reconstruction, step=9)
    assert before is reconstruction and stats == {}
    after, stats = adversary.generator_loss(recon, reconstruction, step=10)
    expected = reconstruction + stats["adversarial_weight"] * stats["adversarial"]
    assert stats["adversarial_weight"] > 0 and after.item() == pytest.approx(expected.item(), rel=1e-5)


def _adversarial_config(tmp_path, shards, steps):
    path = tiny_config(tmp_path, shards, steps=steps)
    config = yaml.safe_load(path.read_text())
    config["adversarial"] = {"weight": 0.5, "channels": [8, 16]}
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_adversarial_run_keeps_its_discriminator_across_a_resume(tmp_path, small_shards, caplog):
    from matrix_sim.train.vae import train_vae

    plain = tiny_config(tmp_path, small_shards, steps=2)
    train_vae(plain, progress=False)
    path = _adversarial_config(tmp_path, small_shards, steps=4)
    with caplog.at_level(logging.INFO, logger="matrix_sim.train.vae"):
        train_vae(path, progress=False)                 # resumes the plain run: a new discriminator starts
        assert "holds no discriminator" in caplog.text
        state = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
        assert state["step"] == 4 and "discriminator" in state and "discriminator_optimizer" in state
        caplog.clear()
        train_vae(path, steps=6, progress=False)        # resumes with it
        assert "holds no discriminator" not in caplog.text and "discriminator" in caplog.text
    moved = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)["discriminator"]
    assert any(not torch.equal(moved[k], v) for k, v in state["discriminator"].items()), "it did not train on"


def test_a_malformed_adversarial_section_names_the_key(tmp_path, small_shards):
    path = _adversarial_config(tmp_path, small_shards, steps=1)
    config = yaml.safe_load(path.read_text())
    config["adversarial"]["strength"] = 2
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="strength"):
        load_vae_config(path)
