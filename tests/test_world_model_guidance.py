"""Action guidance: at inference (two rows, idle as the reference) and distilled into training (frozen teacher)."""
from dataclasses import replace

import pytest
import torch

from matrix_sim.actions import Action
from matrix_sim.config import ConfigError
from matrix_sim.models.checkpoint import CheckpointError, load_model
from matrix_sim.models.dit import WorldDiT
from matrix_sim.stream import bundle
from matrix_sim.stream.sampler import SwinSampler
from matrix_sim.stream.schedule import StreamConfig
from matrix_sim.train.guidance import GuidanceDistill, GuidanceTeacher
from matrix_sim.train.world_config import load_config
from matrix_sim.train.world_model import train

from wm_helpers import (TINY_MODEL, TINY_STREAM, float32, lively_dit, one_thread,  # noqa: F401 (autouse)
                        save_tiny_vae, write_config, write_latent_shards)

LATENT = (4, 4, 6)


def teacher_dir(directory):
    """A DiT folder whose output depends on the actions."""
    lively_dit().save_pretrained(directory / bundle.DIT_DIR)
    return directory


def inputs(frames: int = 5, batch: int = 2):
    g = torch.Generator().manual_seed(3)
    return (torch.randn(batch, frames, *LATENT, generator=g), torch.rand(batch, frames, generator=g),
            torch.rand(batch, frames, 5, generator=g) * 2 - 1, torch.randn(batch, 384, generator=g))


def action_difference(dit: WorldDiT) -> float:
    """RMS of v(actions) - v(idle) on fixed inputs: how much the actions move the prediction."""
    latents, levels, actions, prompts = inputs()
    with torch.no_grad():
        delta = dit(latents, levels, actions, prompts) - dit(latents, levels, torch.zeros_like(actions), prompts)
    return float(delta.pow(2).mean().sqrt())


def test_teacher_shift_is_the_guided_difference_on_scored_frames(tmp_path):
    settings = GuidanceDistill(scale=3.0, teacher=str(teacher_dir(tmp_path)))
    teacher = GuidanceTeacher(settings, {}, torch.device("cpu"))
    latents, levels, actions, prompts = inputs()
    scored = torch.zeros(2, 5, dtype=torch.bool)
    scored[:, 2:] = True                                               # 2 context frames, 3 window frames
    shift = teacher.target_shift(latents, levels, actions, prompts, scored)
    idle = actions.clone()
    idle[:, 2:] = 0
    with torch.no_grad():
        expected = 2.0 * (teacher.model(latents, levels, actions, prompts)
                          - teacher.model(latents, levels, idle, prompts))
    assert torch.allclose(shift, expected, atol=1e-5) and shift[:, 2:].abs().mean() > 1e-3
    assert shift[:, :2].abs().max() < 1e-5           # causal time: context frames never see the window's actions
    still = teacher.target_shift(latents, levels, torch.zeros_like(actions), prompts, scored)
    assert still.abs().max() == 0                     # idle actions: nothing to exaggerate
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_distilled_guidance_makes_actions_matter_more(tmp_path):
    data = write_latent_shards(tmp_path / "latents")
    vae = save_tiny_vae(tmp_path / "vae")
    start = teacher_dir(tmp_path / "teacher")
    common = dict(steps=20, lr=1e-3, ema_decay=0.0, init_from=str(start),
                  levels={"forcing_prob": 0.25, "context_dropout": 0.0, "partial_window": 0.0,
                          "context_noise_max": 0.05, "level_jitter": 0.5})
    train(write_config(tmp_path, data, tmp_path / "plain", vae, **common), progress=False)
    train(write_config(tmp_path, data, tmp_path / "guided", vae, guidance={"scale": 5.0, "teacher": str(start)},
                       **common), progress=False)
    before = action_difference(load_model(WorldDiT, start / bundle.DIT_DIR))
    plain, guided = (action_difference(load_model(WorldDiT, tmp_path / run / bundle.DIT_DIR))
                     for run in ("plain", "guided"))
    assert guided > 1.3 * plain and guided > before, (before, plain, guided)


def test_guidance_config_is_checked(tmp_path):
    data = write_latent_shards(tmp_path / "latents", episodes=1)
    vae = save_tiny_vae(tmp_path / "vae")
    path = write_config(tmp_path, data, tmp_path / "run", vae, guidance={"scale": 0.5, "teacher": "x"})
    with pytest.raises(ConfigError, match="guidance.scale must be >= 1"):
        load_config(path)
    path = write_config(tmp_path, data, tmp_path / "run", vae, guidance={"scale": 2.0, "teacher": "x", "w": 1})
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(path)
    teacher = {"scale": 2.0, "teacher": str(teacher_dir(tmp_path / "teacher"))}
    finer = {**TINY_MODEL, "patch_size": 1}                 # another token layout: the teacher's v cannot be read
    path = write_config(tmp_path, data, tmp_path / "run", vae, model=finer, guidance=teacher)
    with pytest.raises(CheckpointError, match="guidance.teacher .* another model: patch_size"):
        train(path, progress=False)
    # a bigger student learns from the same teacher (the latents, actions and prompts are what they share)
    bigger = {**TINY_MODEL, "width": 64, "depth": 2}
    path = write_config(tmp_path, data, tmp_path / "bigger", vae, steps=1, model=bigger, guidance=teacher)
    assert train(path, progress=False).step == 1


def test_inference_guidance_exaggerates_the_action_and_is_off_at_one(tmp_path):
    dit = load_model(WorldDiT, teacher_dir(tmp_path) / bundle.DIT_DIR).eval()
    stream = StreamConfig(**TINY_STREAM)
    prompt, turn = torch.zeros(384), torch.as_tensor(Action(forward=1.0, turn=1.0).to_array())

    def emitted(config: StreamConfig, action: torch.Tensor) -> torch.Tensor:
        sampler = SwinSampler(dit, config, LATENT, torch.device("cpu"))
        out = [sampler.step(action, prompt) for _ in range(config.filling_calls + 2)]
        return torch.cat([o.latents for o in out if o is not None])

    idle = torch.zeros_like(turn)
    plain = emitted(stream, turn)
    assert torch.allclose(emitted(replace(stream, action_guidance=1.0), turn), plain)    # off: the same stream
    guided = emitted(replace(stream, action_guidance=3.0), turn)
    assert torch.allclose(emitted(replace(stream, action_guidance=3.0), idle), emitted(stream, idle), atol=1e-5)
    # the guided stream moves further from the idle stream than the plain one does
    assert (guided - emitted(stream, idle)).abs().mean() > 1.5 * (plain - emitted(stream, idle)).abs().mean()
    with pytest.raises(ValueError, match="action_guidance"):
        StreamConfig(**TINY_STREAM, action_guidance=-1.0)


def test_unguided_fields_keep_their_difference_as_the_teacher_has_it(tmp_path):
    settings = GuidanceDistill(scale=3.0, teacher=str(teacher_dir(tmp_path)), unguided=["brake"])
    teacher = GuidanceTeacher(settings, {}, torch.device("cpu"))
    latents, levels, actions, prompts = inputs()
    scored = torch.ones(2, 5, dtype=torch.bool)
    brake_only = torch.zeros_like(actions)
    brake_only[..., 4] = 1.0                                          # Action(brake=1)
    assert teacher.target_shift(latents, levels, brake_only, prompts, scored).abs().max() == 0
    reference = actions.clone()
    reference[..., :4] = 0                                            # idle but for the brake
    with torch.no_grad():
        expected = 2.0 * (teacher.model(latents, levels, actions, prompts)
                          - teacher.model(latents, levels, reference, prompts))
    assert torch.allclose(teacher.target_shift(latents, levels, actions, prompts, scored), expected, atol=1e-5)
    plain = GuidanceTeacher(GuidanceDistill(scale=3.0, teacher=settings.teacher), {}, torch.device("cpu"))
    assert plain.target_shift(latents, levels, brake_only, prompts, scored).abs().mean() > 1e-3


def test_unguided_fields_are_checked(tmp_path):
    data, vae = write_latent_shards(tmp_path / "data"), save_tiny_vae(tmp_path / "vae")
    for unguided, message in ((["brakes"], r"unknown action field\(s\) \['brakes'\]"), ("brake", "must be a list")):
        path = write_config(tmp_path, data, tmp_path / "run", vae,
                            guidance={"scale": 2.0, "teacher": "x", "unguided": unguided})
        with pytest.raises(ConfigError, match=message):
            load_config(path)
