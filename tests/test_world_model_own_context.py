"""Context from the model's own estimates (train/own_context.py): the estimate, which frames it replaces, the config
section, and that training uses it."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from matrix_sim.config import ConfigError
from matrix_sim.stream import bundle
from matrix_sim.train.latents import ClipBatch
from matrix_sim.stream.schedule import StreamConfig
from matrix_sim.train.own_context import OwnContext, own_estimates, unrolled, with_own_context
from matrix_sim.train.world_config import load_config
from matrix_sim.train.world_model import LOG_FILE, train

from wm_helpers import one_thread, save_tiny_vae, write_config, write_latent_shards  # noqa: F401 (autouse fixture)

CPU = torch.device("cpu")
STREAM = StreamConfig(context_frames=3, levels=3, block_frames=2, context_level=0.05)


class PerfectModel(torch.nn.Module):
    """Predicts v = (x_s - x0) / s for known true frames x0: exactly right whatever the noise, if the levels it
    is given are the levels the frames were noised to."""

    def __init__(self, truth: torch.Tensor):
        super().__init__()
        self.truth, self.seen = truth, []

    def forward(self, noisy, levels, actions, prompts):
        self.seen.append((noisy.shape, levels.clone(), actions.clone(), prompts.clone()))
        return (noisy - self.truth[:, :noisy.shape[1]]) / levels[..., None, None, None]


class StillModel(torch.nn.Module):
    """Predicts v = 0: the estimate is the noised frame itself."""

    def forward(self, noisy, levels, actions, prompts):
        return torch.zeros_like(noisy)


def clips(batch: int = 4, frames: int = 7) -> ClipBatch:
    g = torch.Generator().manual_seed(0)
    return ClipBatch(torch.randn(batch, frames, 4, 4, 6, generator=g), torch.rand(batch, frames, 5, generator=g),
                     ["a"] * batch)


def test_a_perfect_model_estimates_the_true_frames_and_a_still_one_the_noised_frames():
    truth = clips().latents[:, :3]
    actions, prompts = torch.rand(4, 3, 5), torch.randn(4, 3, 7)
    perfect = PerfectModel(truth)
    estimate = own_estimates(perfect, truth, actions, prompts, (0.2, 0.7), torch.Generator().manual_seed(1), CPU)
    assert torch.allclose(estimate, truth, atol=1e-5)
    _, levels, seen_actions, seen_prompts = perfect.seen[0]
    assert levels.min() >= 0.2 and levels.max() <= 0.7 and levels.std() > 0.05      # a level per frame, in range
    assert torch.equal(seen_actions, actions) and torch.equal(seen_prompts, prompts)
    ones = torch.ones(2000, 1, 4, 4, 6)
    noised = own_estimates(StillModel(), ones, torch.zeros(2000, 1, 5), torch.zeros(2000, 1, 7), (0.5, 0.5),
                           torch.Generator().manual_seed(2), CPU)
    assert abs(noised.mean().item() - 0.5) < 0.01 and abs(noised.std().item() - 0.5) < 0.01   # 0.5 x0 + 0.5 noise


def test_only_the_context_of_the_picked_clips_is_replaced():
    batch = clips()
    rows = np.array([True, False, True, False])
    prompts = torch.arange(4 * 7 * 3, dtype=torch.float32).reshape(4, 7, 3)       # per frame (scene cuts)
    settings = OwnContext(share=0.5, levels=(0.3, 0.3))
    before = batch.latents.clone()
    model = PerfectModel(torch.zeros(2, 3, 4, 4, 6))                             # estimates: all zero
    out = with_own_context(model, batch, prompts, rows, 3, settings, STREAM, torch.Generator().manual_seed(0), CPU)
    assert out.latents[rows, :3].abs().max() < 1e-5
    assert torch.equal(out.latents[~rows], before[~rows]) and torch.equal(out.latents[:, 3:], before[:, 3:])
    assert torch.equal(out.actions, batch.actions) and torch.equal(batch.latents, before)     # inputs untouched
    shape, _, actions, seen_prompts = model.seen[0]
    assert shape == (2, 3, 4, 4, 6) and torch.equal(actions, batch.actions[rows, :3])
    assert torch.equal(seen_prompts, prompts[rows, :3])                # each context frame with its own prompt
    shared = torch.randn(4, 3)                                         # one prompt a clip
    with_own_context(model, batch, shared, rows, 3, settings, STREAM, torch.Generator().manual_seed(0), CPU)
    assert torch.equal(model.seen[1][3], shared[rows, None].expand(-1, 3, -1))
    untouched = with_own_context(model, batch, shared, np.zeros(4, dtype=bool), 3, settings, STREAM, torch.Generator(), CPU)
    assert untouched is batch and len(model.seen) == 2


def test_unrolled_frames_are_the_models_own_chain_behind_the_frames_before_them():
    truth = clips(batch=2, frames=5).latents
    actions, prompts = torch.rand(2, 5, 5), torch.randn(2, 5, 7)
    perfect = PerfectModel(truth)
    out = unrolled(perfect, truth, actions, prompts, 3, STREAM, torch.Generator().manual_seed(0), CPU)
    assert torch.allclose(out, truth, atol=1e-4)            # a perfect model's chain lands on the true frames
    # blocks of B = 2 after the two kept frames: frames 2-3 then 4, each in L = 3 steps from s = 1
    assert [seen[0][1] for seen in perfect.seen] == [4, 4, 4, 5, 5, 5]
    block_levels = [seen[1][0, -1].item() for seen in perfect.seen]
    assert block_levels == pytest.approx([1.0, 2 / 3, 1 / 3] * 2)
    assert torch.allclose(perfect.seen[3][1][0, :4], torch.full((4,), 0.05))      # what came before: context level
    assert torch.equal(perfect.seen[0][2], actions[:, :4]) and torch.equal(perfect.seen[3][3], prompts)
    still = unrolled(StillModel(), truth, actions, prompts, 3, STREAM, torch.Generator().manual_seed(0), CPU)
    assert torch.equal(still[:, :2], truth[:, :2])           # the kept frames are left as they are
    assert (still[:, 2:] - truth[:, 2:]).abs().mean() > 0.5 and 0.8 < still[:, 2:].std() < 1.2   # v = 0: noise


def test_with_unroll_the_last_context_frames_are_unrolled_after_the_estimates():
    batch = clips()
    rows = np.array([True, True, False, False])
    model = PerfectModel(torch.zeros(2, 3, 4, 4, 6))
    out = with_own_context(model, batch, torch.randn(4, 3), rows, 3, OwnContext(0.5, (0.3, 0.3), unroll=2), STREAM,
                           torch.Generator().manual_seed(0), CPU)
    assert out.latents[rows, :3].abs().max() < 1e-4
    assert len(model.seen) == 1 + 3                           # the estimate, then one block of two in L = 3 steps
    assert model.seen[0][0][1] == 1                           # only the kept frame is estimated


@pytest.mark.parametrize("section, message", [
    ({"share": 0.5, "levels": [0.1, 0.5], "unroll": -1}, "unroll must be >= 0"),
    ({"share": 1.5, "levels": [0.1, 0.5]}, "share must lie in"),
    ({"share": 0.5, "levels": [0.6, 0.1]}, "low <= high"),
    ({"share": 0.5, "levels": [0.1]}, r"must be \[low, high\]"),
    ({"share": 0.5}, "missing key"),
])
def test_bad_own_context_sections_are_named(tmp_path, section, message):
    data = write_latent_shards(tmp_path / "latents", episodes=1)
    path = write_config(tmp_path, data, tmp_path / "run", save_tiny_vae(tmp_path / "vae"), own_context=section)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_training_uses_the_models_own_context(tmp_path):
    data = write_latent_shards(tmp_path / "latents")
    vae = save_tiny_vae(tmp_path / "vae")
    levels = {"forcing_prob": 0.0, "context_dropout": 0.0, "partial_window": 0.0, "context_noise_max": 0.05,
              "level_jitter": 0.5}
    weights = {}
    for name, share in (("plain", 0.0), ("own", 1.0)):
        own = {"share": share, "levels": [0.2, 0.6]}
        train(write_config(tmp_path, data, tmp_path / name, vae, steps=6, levels=levels, own_context=own),
              progress=False)
        weights[name] = load_file(tmp_path / name / bundle.DIT_DIR / "diffusion_pytorch_model.safetensors")
    assert "own estimates in 100 % of the stream-shaped clips" in (tmp_path / "own" / LOG_FILE).read_text()
    moved = max((weights["own"][k] - weights["plain"][k]).abs().max().item() for k in weights["own"])
    assert moved > 1e-6          # same seed, same clips: only the context differs
