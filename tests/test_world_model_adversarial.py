"""The world model's adversarial term: which estimates are judged, a step with none to judge, a run that keeps its
discriminator, and the config's checks."""
import pytest
import torch
import torch.nn.functional as F
import yaml

from matrix_sim.config import ConfigError
from matrix_sim.stream.schedule import StreamConfig
from matrix_sim.train.adversarial import Adversary, EstimateAdversarial, hinge_discriminator_loss, weighted_mean
from matrix_sim.train.distributed import Distributed
from matrix_sim.train.latents import ClipBatch
from matrix_sim.train.levels import Layout, LevelMix
from matrix_sim.train.world_config import load_config
from matrix_sim.train.world_model import DISCRIMINATOR_FILE, LOG_FILE, flow_loss, train

from wm_helpers import one_thread, save_tiny_vae, write_config, write_latent_shards  # noqa: F401 (autouse)

CPU = Distributed(0, 1, torch.device("cpu"))
STREAM = StreamConfig(context_frames=3, levels=4, block_frames=2, shift=2.0)     # window levels ~0.4, 0.67, 0.86, 1
MIX = LevelMix(forcing_prob=0.0, context_dropout=0.0, partial_window=0.0, context_noise_max=0.1, level_jitter=0.5)
SETTINGS = EstimateAdversarial(weight=0.5, start_step=2, channels=[8], max_level=0.5)


class ScaledInput(torch.nn.Module):
    """v from a 1x1 convolution of the noisy latents: one output layer for the adaptive weight to read."""

    def __init__(self):
        super().__init__()
        self.out = torch.nn.Conv2d(4, 4, 1)

    def forward(self, latents, levels, actions, prompts):
        b, t = latents.shape[:2]
        return self.out(latents.flatten(0, 1)).unflatten(0, (b, t))


MODEL = ScaledInput()


def _loss(layout: Layout, step: int, adversary: Adversary):
    torch.manual_seed(0)
    clips = ClipBatch(torch.randn(3, 11, 4, 8, 8), torch.zeros(3, 11, 5), ["a", "b", "c"])
    return flow_loss(MODEL, clips, torch.zeros(3, 384), layout, STREAM, MIX, torch.Generator().manual_seed(0),
                     torch.device("cpu"), adversary=adversary, step=step)


@pytest.fixture
def adversary():
    return Adversary(SETTINGS, MODEL.out.weight, CPU, in_channels=4)


def test_the_scored_frames_are_judged_and_only_the_low_noise_ones_count(adversary):
    out = _loss(Layout(3, 4, forcing=False), step=2, adversary=adversary)
    real, fake, counts = out.judged
    assert real.shape == fake.shape == (3 * 8, 4, 8, 8)                  # the window's 8 frames of each clip
    assert counts.tolist() == [True, True, False, False, False, False, False, False] * 3     # the first block only
    assert out.stats["adversarial_weight"] > 0
    flow_only = _loss(Layout(3, 4, forcing=False), step=1, adversary=adversary)               # before start_step
    assert flow_only.stats == {}
    expected = flow_only.loss + out.stats["adversarial_weight"] * out.stats["adversarial"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_step_with_nothing_to_judge_still_reaches_the_discriminator(adversary):
    out = _loss(Layout(0, 1, forcing=False), step=5, adversary=adversary)     # a starting window: its noisiest block
    assert not out.judged[2].any() and out.stats == {}
    out.loss.backward()                                                       # every DDP replica joins the backward
    assert all(p.grad is not None and not p.grad.any() for p in adversary.model.parameters())
    before = [p.detach().clone() for p in adversary.model.parameters()]
    assert adversary.update(*out.judged)["discriminator"] == 0.0
    assert all(torch.allclose(b, p) for b, p in zip(before, adversary.model.parameters()))


def test_weights_pick_the_pairs_the_hinge_loss_counts():
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    picked = torch.tensor([True, False, True, True, False, False])
    assert hinge_discriminator_loss(real, fake, picked).item() == pytest.approx(
        hinge_discriminator_loss(real[picked], fake[picked]).item())
    assert weighted_mean(F.relu(real), torch.zeros(6, dtype=torch.bool)).item() == 0.0


def _discriminator_rate(run) -> float:
    return torch.load(run / DISCRIMINATOR_FILE, weights_only=True)["discriminator_optimizer"]["param_groups"][0]["lr"]


def test_an_adversarial_run_logs_its_figures_resumes_its_discriminator_and_cools_it_down(tmp_path):
    data, vae = write_latent_shards(tmp_path / "latents"), save_tiny_vae(tmp_path / "vae")
    run = tmp_path / "run"
    section = {"weight": 0.5, "start_step": 1, "channels": [8], "max_level": 0.7, "lr": 1e-3}
    train(write_config(tmp_path, data, run, vae, steps=2, warmup_steps=2, adversarial=section), progress=False)
    first = torch.load(run / DISCRIMINATOR_FILE, weights_only=True)["discriminator"]
    assert _discriminator_rate(run) == pytest.approx(1e-3)          # full rate through the world model's warm-up
    train(write_config(tmp_path, data, run, vae, steps=4, cooldown_steps=2, adversarial=section), progress=False)
    second = torch.load(run / DISCRIMINATOR_FILE, weights_only=True)["discriminator"]
    log = (run / LOG_FILE).read_text()
    assert "resumed the discriminator from" in log and "adversarial_weight" in log and "discriminator " in log
    assert any(not torch.equal(first[k], second[k]) for k in first)           # it went on learning
    assert _discriminator_rate(run) == pytest.approx(0.5e-3)        # the last step, halfway down the cooldown


@pytest.mark.parametrize("section, message", [
    ({"weight": 0.5, "max_level": 1.5}, "max_level"),
    ({"weight": 0.5, "channels": []}, "channels"),
    ({"weight": -1.0}, "weight"),
])
def test_a_malformed_adversarial_section_is_refused_when_the_config_loads(tmp_path, section, message):
    path = write_config(tmp_path, tmp_path / "latents", tmp_path / "run", tmp_path / "vae", adversarial=section)
    with pytest.raises(ConfigError, match=f"adversarial: .*{message}"):
        load_config(path)


def test_the_autoencoders_section_is_checked_as_it_loads(tmp_path):
    from matrix_sim.train.vae import load_vae_config

    from vae_helpers import tiny_config

    path = tiny_config(tmp_path, tmp_path / "shards", steps=1)
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, "adversarial": {"weight": 1.0, "channels": []}}))
    with pytest.raises(ConfigError, match="adversarial: .*channels"):
        load_vae_config(path)
