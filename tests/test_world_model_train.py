"""World-model training: stream-shaped levels, shard reading, overfitting, resume, and DDP on two CPU processes."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from matrix_sim.models.checkpoint import CheckpointError
from matrix_sim.stream import bundle
from matrix_sim.stream.schedule import StreamConfig, level_schedule
from matrix_sim.train.latents import LatentShards
from matrix_sim.train.levels import Layout, LevelMix, sample_layout, shift_context, training_levels
from matrix_sim.train.optim import OptimSettings, warmup_stable_cooldown
from matrix_sim.train.run_state import STATE_FILE
from matrix_sim.train.latents import ClipBatch
from matrix_sim.train.world_model import LOG_FILE, TimeBudget, context_rows, cut_scenes, train

from wm_helpers import (TINY_MODEL, TINY_STREAM, one_thread, save_tiny_vae, write_config,  # noqa: F401 (autouse)
                        write_latent_shards)

STREAM = StreamConfig(context_frames=3, levels=4, block_frames=2, shift=2.0)
MIX = LevelMix(forcing_prob=0.0, context_dropout=0.0, partial_window=0.0, context_noise_max=0.1, level_jitter=0.5)


def saved_step(run_dir) -> int:
    with safe_open(str(run_dir / STATE_FILE), framework="pt") as f:
        return int(f.metadata()["step"])


@pytest.fixture
def data(tmp_path):
    return write_latent_shards(tmp_path / "latents")


@pytest.fixture
def vae(tmp_path):
    return save_tiny_vae(tmp_path / "vae")


def test_stream_levels_mirror_the_window():
    levels, mask = training_levels(Layout(3, 4, forcing=False), STREAM, MIX, 64, torch.Generator().manual_seed(0))
    assert levels.shape == mask.shape == (64, 3 + 8)
    assert not mask[:, :3].any() and mask[:, 3:].all()
    assert levels[:, :3].max() <= 0.1
    window = levels[:, 3:]
    assert torch.equal(window[:, 0::2], window[:, 1::2])              # a block shares its level
    schedule = level_schedule(4, 2.0)
    gaps = (schedule[1:] - schedule[:-1]) * MIX.level_jitter / 2
    assert torch.all((window[:, 0::2] - schedule[1:]).abs() <= gaps + 1e-6)
    assert torch.all(window[:, 0::2].mean(0).diff() > 0)              # older blocks are less noisy


def test_partial_windows_hold_the_newest_levels():
    levels, mask = training_levels(Layout(0, 2, forcing=False), STREAM, MIX, 8, torch.Generator().manual_seed(0))
    assert levels.shape == (8, 4) and mask.all()
    assert levels[:, -1].min() > level_schedule(4, 2.0)[3]


def test_layouts_mix_stream_and_forcing():
    mix = LevelMix(forcing_prob=0.5, context_dropout=0.5, partial_window=0.5, context_noise_max=0.1, level_jitter=0.5)
    layouts = [sample_layout(np.random.default_rng(i), STREAM, mix) for i in range(200)]
    assert 50 < sum(l.forcing for l in layouts) < 150
    assert any(l.context < 3 for l in layouts) and any(l.blocks < 4 for l in layouts)
    assert all(l.frames(STREAM) <= STREAM.clip_frames for l in layouts)


def test_scene_cuts_give_context_and_its_prompt_from_another_clip():
    mix = LevelMix(forcing_prob=0.0, context_dropout=0.0, partial_window=0.0, context_noise_max=0.1,
                   level_jitter=0.5, scene_cut=0.5)
    rng = np.random.default_rng(0)
    assert not context_rows(rng, Layout(3, 4, forcing=True), mix.scene_cut, 8).any()      # forcing and
    assert not context_rows(rng, Layout(0, 2, forcing=False), mix.scene_cut, 8).any()     # prompt-only starts: no cut
    rows = context_rows(rng, Layout(3, 4, forcing=False), mix.scene_cut, 400)
    assert 150 < rows.sum() < 250
    own = ClipBatch(torch.zeros(4, 11, 4, 4, 6), torch.zeros(4, 11, 5), ["a"] * 4)
    other = ClipBatch(torch.ones(4, 11, 4, 4, 6), torch.ones(4, 11, 5), ["b"] * 4)
    rows = np.array([True, False, True, False])
    clips, prompts = cut_scenes(own, torch.zeros(4, 7), other, torch.ones(4, 7), rows, context=3)
    assert prompts.shape == (4, 11, 7)
    for i, cut in enumerate(rows):
        context = 1.0 if cut else 0.0
        assert (clips.latents[i, :3] == context).all() and (clips.actions[i, :3] == context).all()
        assert (prompts[i, :3] == context).all()
        assert (clips.latents[i, 3:] == 0).all() and (prompts[i, 3:] == 0).all()    # the window keeps its own
    assert (own.latents == 0).all()                                                # inputs untouched


def test_shards_give_model_space_clips_with_the_actions_that_made_them(tmp_path):
    data = write_latent_shards(tmp_path / "latents", episodes=1, frames=12)
    shards = LatentShards(data, clip_frames=5, progress=False)
    clips = shards.sample(np.random.default_rng(0), 3)
    assert clips.latents.shape == (3, 5, 4, 4, 6) and clips.actions.shape == (3, 5, 5)
    with np.load(data / "episode_000000.npz") as episode:
        model_space = (torch.from_numpy(episode["latents"].astype(np.float32)) - 0.5) * 2.0    # (x - shift) * scale
        actions = episode["actions"]
    for latents, acts in zip(clips.latents, clips.actions):
        (start,) = [t for t in range(12 - 4) if torch.allclose(model_space[t:t + 5], latents)]
        assert start >= 1 and np.array_equal(acts.numpy(), actions[start - 1:start + 4])   # made by action t - 1
    assert all(text in shards.texts() for text in clips.texts)


def test_still_share_draws_clips_whose_picture_does_not_change(tmp_path):
    data = write_latent_shards(tmp_path / "latents", episodes=2, frames=12)
    with pytest.raises(ValueError, match="no clip of the data holds one picture"):
        LatentShards(data, clip_frames=5, progress=False).sample(np.random.default_rng(0), 2, still_share=0.5)
    with np.load(data / "episode_000001.npz") as episode:
        parts = dict(episode)
    parts["latents"][4:11] = parts["latents"][4]                      # frames 4-10: a player who stopped
    np.savez(data / "episode_000001.npz", **parts)
    shards = LatentShards(data, clip_frames=5, progress=False)
    assert shards.still_starts().tolist() == [[1, 4], [1, 5], [1, 6]]
    still = shards.sample(np.random.default_rng(0), 16, still_share=1.0)
    assert (still.latents == still.latents[:, :1]).all()
    moving = shards.sample(np.random.default_rng(0), 16)
    assert sum(bool((clip == clip[:1]).all()) for clip in moving.latents) < 16


def test_a_shifted_context_moves_each_clips_context_by_one_offset_a_channel():
    x0 = torch.randn(400, 5, 4, 3, 4, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 2, 3, 4])[
        None, None, :, None, None]
    out = shift_context(x0, 3, 0.5, torch.Generator().manual_seed(1))
    moved = out - x0
    assert torch.equal(out[:, 3:], x0[:, 3:]) and not torch.equal(out, x0)          # the window keeps its targets
    offsets = moved[:, 0, :, 0, 0]                                                  # (clips, channels)
    assert torch.allclose(moved[:, :3], offsets[:, None, :, None, None].expand_as(moved[:, :3]), atol=1e-5)
    spread = x0.mean(dim=(3, 4)).flatten(0, 1).std(dim=0)
    assert torch.allclose(offsets.std(dim=0) / spread, torch.full((4,), 0.5), atol=0.06)   # amount x the spread
    assert shift_context(x0, 3, 0.0, torch.Generator()) is x0 and shift_context(x0, 0, 0.5, torch.Generator()) is x0


@pytest.mark.parametrize("context_shift, own_context, detail, neighbours", [
    (0.0, None, None, 0), (0.5, None, None, 0), (0.0, {"share": 0.5, "levels": [0.1, 0.6], "unroll": 1}, None, 0),
    (0.0, None, {"weight": 0.3, "change": 0.3}, 0), (0.0, {"share": 0.5, "levels": [0.1, 0.6], "unroll": 1}, None, 1)])
def test_a_tiny_model_overfits_one_clip(tmp_path, vae, context_shift, own_context, detail, neighbours):
    one_clip = write_latent_shards(tmp_path / "one", episodes=1, frames=6)     # one clip of 5 + the action before
    levels = {"forcing_prob": 0.25, "context_dropout": 0.1, "partial_window": 0.1, "context_noise_max": 0.05,
              "level_jitter": 0.5, "scene_cut": 0.5, "context_shift": context_shift}
    path = write_config(tmp_path, one_clip, tmp_path / "run", vae, steps=300, log_every=30, save_every=300,
                        lr=3e-3, model={"width": 64, "depth": 2, "heads": 2, "neighbours": neighbours}, levels=levels,
                        own_context=own_context,
                        detail=detail)
    summary = train(path, progress=False)
    assert summary.step == 300
    assert summary.last_loss < summary.first_loss / 5, summary


def test_steps_given_on_the_command_line_move_the_cooldown(tmp_path, data, vae):
    path = write_config(tmp_path, data, tmp_path / "run", vae, steps=2, cooldown_steps=2)
    train(path, progress=False)
    train(path, steps=4, progress=False)          # without the move, steps 2-3 would train at a rate of zero
    logged = re.findall(r"step (\d+) loss \S+ lr (\S+)", (tmp_path / "run" / LOG_FILE).read_text())
    assert [(int(step), float(lr)) for step, lr in logged] == [(2, 5e-4), (4, 5e-4)]


def test_a_time_budget_sets_the_last_step_from_the_measured_rate(monkeypatch):
    from matrix_sim.train import world_model
    from matrix_sim.train.distributed import Distributed

    now = [0.0]
    monkeypatch.setattr(world_model.time, "monotonic", lambda: now[0])
    budget = TimeBudget(60.0)
    single = Distributed(rank=0, world_size=1, device=torch.device("cpu"))
    ends = []
    for step in range(101, 101 + TimeBudget.TIMING_TO):      # a run resumed at step 100, 0.5 s a step
        now[0] = 0.5 * (step - 100)
        ends.append(budget.last_step(step, single))
    assert ends[:-1] == [None] * (TimeBudget.TIMING_TO - 1)
    # 30 steps in, 15 s of the 60 are gone: the other 45 s buy 90 more steps
    assert ends[-1] == 100 + TimeBudget.TIMING_TO + 90
    assert budget.last_step(131, single) is None              # set at the timing steps only


def test_a_time_budget_follows_a_slower_rate_until_the_cooldown(monkeypatch):
    """Steps that turn slower once a term starts move the end earlier; once the cooldown has begun the end stays,
    whatever the rate does."""
    from matrix_sim.train import world_model
    from matrix_sim.train.distributed import Distributed

    now = [0.0]
    monkeypatch.setattr(world_model.time, "monotonic", lambda: now[0])
    budget, single = TimeBudget(100.0), Distributed(rank=0, world_size=1, device=torch.device("cpu"))
    window = TimeBudget.TIMING_TO - TimeBudget.TIMING_FROM
    ends = {}
    for step in range(1, 200):
        per_step = 0.5 if step <= TimeBudget.TIMING_TO else 1.0
        now[0] += per_step
        if (end := budget.last_step(step, single, cooldown_steps=20)) is not None:
            ends[step] = end
    first = ends.pop(TimeBudget.TIMING_TO)
    assert first == TimeBudget.TIMING_TO + int((100 - 15) / 0.5)   # 0.5 s a step: 170 more steps
    second_at = TimeBudget.TIMING_TO + window
    assert ends[second_at] == second_at + int((100 - 15 - window) / 1.0)   # 1 s a step now: the end moves earlier
    final = ends[max(ends)]
    assert all(step < final - 20 for step in ends)             # no change once the cooldown has begun
    assert final == TimeBudget.TIMING_TO + 85                  # 15 s for the first 30 steps, 85 s at 1 s a step


def test_train_minutes_ends_the_run_on_its_budget(tmp_path, data, vae):
    """`train --minutes` with a budget spent by the timing steps themselves: the run ends right after them,
    saved, with the cooldown moved there."""
    from matrix_sim.cli import main

    path = write_config(tmp_path, data, tmp_path / "run", vae, steps=10_000, cooldown_steps=5, log_every=10,
                        save_every=10_000)
    assert main(["-q", "train", "--config", str(path), "--minutes", "0.0001"]) == 0
    assert saved_step(tmp_path / "run") == TimeBudget.TIMING_TO
    log = (tmp_path / "run" / LOG_FILE).read_text()
    assert f"the run ends at step {TimeBudget.TIMING_TO}" in log


def test_resume_and_playable_bundle(tmp_path, data, vae):
    path = write_config(tmp_path, data, tmp_path / "run", vae, steps=2)
    train(path, progress=False)
    assert saved_step(tmp_path / "run") == 2
    summary = train(path, steps=4, progress=False)
    assert summary.step == 4 and saved_step(tmp_path / "run") == 4
    for part in (bundle.MANIFEST, bundle.PROMPTS_FILE, "dit/config.json", "vae/config.json"):
        assert (tmp_path / "run" / part).is_file(), part
    assert json.loads((tmp_path / "run" / bundle.MANIFEST).read_text())["latent_shape"] == [4, 4, 6]
    state = tmp_path / "run" / STATE_FILE
    state.write_bytes(state.read_bytes()[:100])               # a state cut short (a full disk) is named, not traced
    with pytest.raises(CheckpointError, match=f"{state}: not a training state file"):
        train(path, steps=6, progress=False)


def test_a_compiled_forward_trains_the_same_weights(tmp_path, data, vae, caplog):
    runs = {}
    for compiled in (False, True):
        run_dir = tmp_path / f"compiled-{compiled}"
        with caplog.at_level("INFO", logger="matrix_sim.train.world_model"):
            summary = train(write_config(tmp_path, data, run_dir, vae, steps=3, compiled=compiled), progress=False)
        runs[compiled] = summary, load_file(str(run_dir / bundle.DIT_DIR / "diffusion_pytorch_model.safetensors"))
    assert "compiling the training forward" in caplog.text            # compiled (the README installs g++)
    (eager, eager_weights), (compiled, compiled_weights) = runs[False], runs[True]
    assert compiled.step == 3 and compiled.last_loss == pytest.approx(eager.last_loss, rel=1e-3)
    assert compiled_weights.keys() == eager_weights.keys()          # the bundle holds the model, not a wrapper
    for key, weight in eager_weights.items():
        assert torch.allclose(compiled_weights[key], weight, atol=1e-4), key


def test_a_compiled_forward_without_a_cpp_compiler_stays_eager(monkeypatch, caplog):
    from matrix_sim.train import world_model

    model = torch.nn.Linear(2, 2)
    monkeypatch.setattr(world_model.shutil, "which", lambda name: None)
    assert world_model.training_forward(model, True) is model
    assert "no C++ compiler" in caplog.text


def test_resume_under_another_model_config_names_the_keys(tmp_path, data, vae):
    train(write_config(tmp_path, data, tmp_path / "run", vae, steps=2), progress=False)
    wider = write_config(tmp_path, data, tmp_path / "run", vae, steps=4, model={"width": 64, "depth": 1, "heads": 2})
    with pytest.raises(CheckpointError, match="model.width: checkpoint has 32, config has 64"):
        train(wider, progress=False)


def test_inference_settings_may_change_between_resumes_but_the_window_may_not(tmp_path, data, vae):
    train(write_config(tmp_path, data, tmp_path / "run", vae, steps=2), progress=False)
    retargeted = {**TINY_STREAM, "retarget_actions": True, "context_level": 0.03, "cache_context": False}
    assert train(write_config(tmp_path, data, tmp_path / "run", vae, steps=4, stream=retargeted),
                 progress=False).step == 4
    longer = {**TINY_STREAM, "levels": 4}
    with pytest.raises(CheckpointError, match="stream.levels: checkpoint has 3, config has 4"):
        train(write_config(tmp_path, data, tmp_path / "run", vae, steps=6, stream=longer), progress=False)


def test_the_command_line_moves_the_run_and_sets_the_batch(tmp_path, data, vae, monkeypatch):
    """`train --run-dir DIR --batch-size N` trains the config's recipe in DIR on N clips a step (the GPU script's
    way of running the shipped config unchanged)."""
    import shutil

    from matrix_sim.cli import main
    from matrix_sim.train.latents import LatentShards as Shards

    config = write_config(tmp_path, data, tmp_path / "configured", vae, steps=1, batch_size=4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(tmp_path / "configured" / "prompts-train.safetensors", elsewhere)    # no real prompt encoder
    drawn = []
    sample = Shards.sample
    monkeypatch.setattr(Shards, "sample", lambda self, rng, n, *a: drawn.append(n) or sample(self, rng, n, *a))
    assert main(["-q", "train", "--config", str(config), "--run-dir", str(elsewhere), "--batch-size", "3",
                 "--steps", "2"]) == 0
    assert (elsewhere / "dit" / "config.json").is_file() and not (tmp_path / "configured" / "dit").exists()
    assert drawn and set(drawn) == {3}


def test_a_new_run_starts_from_a_shipped_bundle(tmp_path, data, vae):
    train(write_config(tmp_path, data, tmp_path / "first", vae, steps=2), progress=False)
    frozen = write_config(tmp_path, data, tmp_path / "second", vae, steps=1, lr=0.0, init_from=str(tmp_path / "first"))
    train(frozen, progress=False)                          # lr 0: the weights stay what they started from
    first, second = (load_file(str(tmp_path / run / "dit" / "diffusion_pytorch_model.safetensors"))
                     for run in ("first", "second"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    extended = write_config(tmp_path, data, tmp_path / "extended", vae, steps=1, lr=0.0,
                            init_from=str(tmp_path / "first"), model={**TINY_MODEL, "neighbours": 1})
    train(extended, progress=False)                        # weights without the neighbour read gain it, unchanged
    grown = load_file(str(tmp_path / "extended" / "dit" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(first[k], grown[k]) for k in first)
    assert {k for k in grown if k not in first} and all(".near_" in k for k in grown if k not in first)
    wider = write_config(tmp_path, data, tmp_path / "third", vae, steps=1, init_from=str(tmp_path / "first"),
                         model={**TINY_MODEL, "width": 64})
    with pytest.raises(CheckpointError, match="init_from .* another model: width"):
        train(wider, progress=False)


def test_latents_from_another_autoencoder_are_refused(tmp_path, data):
    other = save_tiny_vae(tmp_path / "other-vae", scale=3.0)
    with pytest.raises(CheckpointError, match="encode them again"):
        train(write_config(tmp_path, data, tmp_path / "run", other, steps=1), progress=False)


def test_ddp_with_two_cpu_processes(tmp_path, data, vae):
    path = write_config(tmp_path, data, tmp_path / "run", vae, steps=3)
    script = tmp_path / "run_train.py"
    script.write_text("import logging, sys\nfrom matrix_sim.train.world_model import train\n"
                      "logging.basicConfig(level=logging.INFO)\n"
                      "print(train(sys.argv[1], device='cpu', progress=False).step)\n")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script), str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on 2 process(es); replicas in sync" in result.stderr
    assert saved_step(tmp_path / "run") == 3


@pytest.mark.parametrize("name", ["tiny-cpu", "base", "matrix-720p"])
def test_shipped_configs_load(name):
    from matrix_sim.config import CONFIG_DIR
    from matrix_sim.train.world_config import load_config

    config = load_config(CONFIG_DIR / f"{name}.yaml")
    assert config.stream.context_level <= config.levels.context_noise_max


@pytest.mark.parametrize("name", ["base", "matrix-720p"])
def test_gpu_configs_build_the_model_they_describe(name):
    """The GPU configs, never trained here: their DiT builds (on the meta device: shapes without memory) with the
    parameter count their header states."""
    from matrix_sim.config import CONFIG_DIR
    from matrix_sim.models.dit import WorldDiT
    from matrix_sim.train.world_config import load_config

    path = CONFIG_DIR / f"{name}.yaml"
    stated = float(re.search(r"WorldDiT of ([\d.]+)M parameters", path.read_text()).group(1))
    with torch.device("meta"):
        model = WorldDiT(**load_config(path).model)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(stated, abs=0.05)


def test_a_config_extends_another_with_its_changes(tmp_path, data, vae):
    import yaml

    from matrix_sim.config import ConfigError
    from matrix_sim.train.world_config import load_config

    base = write_config(tmp_path, data, tmp_path / "run", vae, guidance={"scale": 2.0, "teacher": "t"})
    variant = tmp_path / "variants" / "deeper.yaml"
    variant.parent.mkdir()
    variant.write_text(yaml.safe_dump({"extends": "../config.yaml", "run_dir": "elsewhere", "model": {"depth": 3},
                                       "train": {"steps": 9}, "guidance": None}))
    config, original = load_config(variant), load_config(base)
    assert config.model == {**TINY_MODEL, "depth": 3}                     # merged key by key
    assert config.train.steps == 9 and config.train.lr == original.train.lr
    assert config.run_dir == "elsewhere" and config.data == original.data and config.stream == original.stream
    assert original.guidance is not None and config.guidance is None      # null removes a section
    variant.write_text(yaml.safe_dump({"extends": "../nowhere.yaml"}))
    with pytest.raises(ConfigError, match="config file not found: .*nowhere.yaml"):
        load_config(variant)
    raw = yaml.safe_load(base.read_text())
    base.write_text(yaml.safe_dump({**raw, "extends": "variants/deeper.yaml"}))
    variant.write_text(yaml.safe_dump({"extends": "../config.yaml"}))
    with pytest.raises(ConfigError, match="extends it back"):
        load_config(variant)


def test_unknown_config_keys_are_named(tmp_path, data, vae):
    import yaml

    from matrix_sim.config import ConfigError
    from matrix_sim.train.world_config import load_config

    path = write_config(tmp_path, data, tmp_path / "run", vae, model={"width": 32, "depth": 1, "heads": 2, "wdith": 3})
    with pytest.raises(ConfigError, match="wdith"):
        load_config(path)
    raw = yaml.safe_load(path.read_text())
    raw["model"].pop("wdith")
    raw["stream"]["levles"] = 3
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="levles"):
        load_config(path)
    raw["stream"].pop("levles")
    raw["still_share"] = 1.5
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"still_share must lie in \[0, 1\], got 1.5"):
        load_config(path)
    raw["still_share"] = 0.0
    raw["detail"] = {"weight": 0.1, "patches": [3]}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"detail: detail.patches must be \[rows, columns\] >= 1, got \[3\]"):
        load_config(path)
    raw["detail"] = {"weight": 0.1, "change": -1}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"detail: detail.weight and detail.change must be >= 0, got 0.1, -1"):
        load_config(path)
    raw["detail"] = None
    raw["train"]["lr"] = "1e-3"                   # YAML reads 1e-3 (no dot) as a string: taken as the number
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path).train.lr == 1e-3
    raw["train"]["steps"] = "many"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"train.steps: expected a number, got 'many'"):
        load_config(path)
    raw["train"]["steps"], raw["compile"] = 10, "yes"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"compile: expected yes/no \(true or false\), got 'yes'"):
        load_config(path)
    raw["compile"], model, raw["model"] = False, raw["model"], None
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="model: expected a mapping of WorldDiT's settings"):
        load_config(path)
    raw["model"] = model
    raw["stil_share"] = 0.5                       # a misspelt top-level key is named, not blamed on a section
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['stil_share'\] for WorldModelConfig"):
        load_config(path)
    path.write_text("data: here\nstream: [1,\n")      # a parse error says where, on one line
    with pytest.raises(ConfigError, match=r"config\.yaml:3:1: not valid YAML \(expected the node content") as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


def test_learning_rate_warms_up_holds_then_cools_down_to_zero():
    o = OptimSettings(lr=1e-3, warmup_steps=10, steps=100, cooldown_steps=20)
    rates = [warmup_stable_cooldown(step, o) for step in range(101)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == rates[50] == rates[80] == pytest.approx(1e-3)
    assert rates[90] == pytest.approx(5e-4) and rates[100] == 0.0
    assert all(a >= b for a, b in zip(rates[50:], rates[51:]))          # never rises again after the warm-up
    held = OptimSettings(lr=1e-3, warmup_steps=10, steps=100)
    assert warmup_stable_cooldown(100_000, held) == pytest.approx(1e-3)   # no cooldown: a resumed run keeps its rate


def test_start_clips_come_from_the_episodes_that_show_each_prompt(tmp_path):
    from matrix_sim.stream.starts import STARTS_FILE, BundleStarts, write_starts

    shards = LatentShards(write_latent_shards(tmp_path / "latents", episodes=3, frames=20), clip_frames=6,
                          progress=False)
    shards.episodes[2].texts = ["doom e1m1"]
    assert write_starts(tmp_path / STARTS_FILE, shards, ["drive desert by day", "doom e1m1", "doom map05"], 6) == 6
    starts = BundleStarts.load(tmp_path)
    assert "doom e1m1" in starts and "doom map05" not in starts
    latents, actions = starts.clip("doom e1m1", seed=0)
    episode = shards.episodes[2]
    start = (20 - 6) // 3                                  # a third of the way in, then two thirds
    np.testing.assert_allclose(latents.numpy(), episode.latents[start:start + 6].astype(np.float32))
    np.testing.assert_array_equal(actions, episode.actions[start:start + 6])      # each frame with its action
    assert BundleStarts.load(tmp_path / "nowhere") is None
    (tmp_path / STARTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="not a start-clip file"):
        BundleStarts.load(tmp_path)
