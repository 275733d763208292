"""The action critic: a latent inverse-dynamics probe, and the loss it adds to world-model training."""
import json

import numpy as np
import pytest
import torch

from matrix_sim.config import ConfigError
from matrix_sim.eval.probe import train_probe
from matrix_sim.models.checkpoint import CheckpointError
from matrix_sim.train.action_loss import ActionCritic, ActionLoss
from matrix_sim.train.world_config import load_config
from matrix_sim.train.world_model import train

from wm_helpers import save_latent_episodes, save_tiny_vae, write_config, one_thread  # noqa: F401 (autouse fixture)

LATENT = (4, 16, 24)
PROBE = {"channels": (8, 16, 16), "hidden": 32}


def smooth_field(rng) -> np.ndarray:
    """A random latent frame, smooth like a real one: coarse noise upsampled to the latent grid."""
    coarse = torch.from_numpy(rng.normal(0, 1, (1, LATENT[0], 3, 4)).astype(np.float32))
    return torch.nn.functional.interpolate(coarse, size=LATENT[1:], mode="bicubic")[0].numpy()


def moving_latents(directory, episodes=48, frames=24, seed=0):
    """Latent shards of smooth random fields moved by the action that made each frame: turn rolls the field
    sideways (a right turn to the left), forward rolls it down."""
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(episodes):
        actions = np.zeros((frames, 5), np.float32)
        actions[:, 0] = rng.choice([-0.8, 0.0, 0.8], frames)
        actions[:, 1] = rng.choice([-0.8, 0.0, 0.8], frames)
        latents = [smooth_field(rng)]
        for t in range(frames - 1):
            shift_rows, shift_cols = int(np.sign(actions[t, 0])), -int(np.sign(actions[t, 1]))
            latents.append(np.roll(latents[-1], (shift_rows, shift_cols), axis=(1, 2)))
        made.append((np.stack(latents), actions))
    return save_latent_episodes(directory, made)


@pytest.fixture(scope="module")
def latent_probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent-probe")
    torch.set_num_threads(1)
    data = moving_latents(root / "latents")
    result = train_probe(data, root / "probe", steps=300, batch_size=32, lr=3e-3, ema_decay=0.9, val_every=4,
                         model=PROBE, progress=False)
    return data, root / "probe", result


def test_a_probe_trained_on_latents_reads_the_latent_grid_and_learns_the_actions(latent_probe):
    data, path, result = latent_probe
    config = json.loads((path / "config.json").read_text())
    assert (config["in_channels"], config["input_height"], config["input_width"]) == LATENT
    assert "heldout_accuracy" not in result                  # held-out clips are pictures, not latents
    assert result["val_accuracy"]["mean"] > result["val_majority"]["mean"] + 0.2


def pair_batch(moved_as_done: bool):
    """Two-frame clips (true frame 0, estimate of frame 1) under a right turn; the estimate moves as the action
    says or the other way."""
    rng = np.random.default_rng(1)
    x0 = torch.from_numpy(np.stack([smooth_field(rng) for _ in range(16)]))[:, None].repeat(1, 2, 1, 1, 1)
    x0[:, 1] = x0[:, 0].roll(-1 if moved_as_done else 1, dims=-1)
    actions = torch.zeros(16, 2, 5)
    actions[:, 1, 1] = 0.8
    return x0, actions


def test_the_critic_prefers_estimates_that_move_as_the_action_says(latent_probe):
    _, path, _ = latent_probe
    critic = ActionCritic(ActionLoss(str(path), weight=1.0), LATENT, torch.device("cpu"))
    levels, scored = torch.full((16, 2), 0.5), torch.tensor([[False, True]] * 16)
    right, actions = pair_batch(moved_as_done=True)
    wrong, _ = pair_batch(moved_as_done=False)
    estimate = wrong.clone().requires_grad_(True)
    bad = critic.loss(wrong, estimate, levels, actions, scored)
    good = critic.loss(right, right, levels, actions, scored)
    assert good < bad
    bad.backward()
    assert estimate.grad[:, 1].abs().sum() > 0 and estimate.grad[:, 0].abs().sum() == 0   # only the scored frame


def test_the_critic_skips_frames_above_its_level_and_unscored_ones(latent_probe):
    _, path, _ = latent_probe
    critic = ActionCritic(ActionLoss(str(path), weight=1.0, max_level=0.4), LATENT, torch.device("cpu"))
    x0, actions = pair_batch(moved_as_done=False)
    estimate = x0.clone().requires_grad_(True)
    scored = torch.tensor([[False, True]] * 16)
    assert critic.loss(x0, estimate, torch.full((16, 2), 0.5), actions, scored) == 0.0
    assert critic.loss(x0, estimate, torch.full((16, 2), 0.3), actions, ~scored) == 0.0
    assert critic.loss(x0, estimate, torch.full((16, 2), 0.3), actions, scored) > 0.0


def test_a_probe_for_other_latents_is_refused_with_the_command_to_train_one(latent_probe):
    _, path, _ = latent_probe
    with pytest.raises(CheckpointError, match="train-probe --data"):
        ActionCritic(ActionLoss(str(path), weight=1.0), (4, 18, 32), torch.device("cpu"))


def test_training_with_the_critic_logs_its_loss(latent_probe, tmp_path):
    data, path, _ = latent_probe
    run_dir = tmp_path / "run"
    config = write_config(tmp_path, data, run_dir, save_tiny_vae(tmp_path / "vae"), steps=4,
                          stream={"context_frames": 2, "levels": 2, "block_frames": 1, "context_level": 0.02},
                          action_loss={"probe": str(path), "weight": 0.5})
    summary = train(config, progress=False)
    assert summary.step == 4 and np.isfinite(summary.last_loss)
    assert "action critic" in (run_dir / "train.log").read_text()


@pytest.mark.parametrize("section, message", [({"probe": "p", "weight": -1.0}, "weight"),
                                              ({"probe": "p", "weight": 0.1, "max_level": 0.0}, "max_level"),
                                              ({"weight": 0.1}, "probe")])
def test_the_action_loss_section_is_checked(tmp_path, section, message):
    data = moving_latents(tmp_path / "latents", episodes=1, frames=8)
    config = write_config(tmp_path, data, tmp_path / "run", tmp_path / "vae", action_loss=section)
    with pytest.raises((ConfigError, ValueError), match=message):
        load_config(config)
