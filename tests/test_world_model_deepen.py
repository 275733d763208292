"""A deeper DiT grown from a trained one computes what it computed until training moves the new blocks."""
import pytest
import torch
from safetensors.torch import load_file

from matrix_sim.actions import ACTION_DIM
from matrix_sim.models.checkpoint import CheckpointError, load_model
from matrix_sim.models.deepen import block_positions, deepens, load_deeper
from matrix_sim.models.dit import TemporalCache, WorldDiT
from matrix_sim.stream import bundle
from matrix_sim.train.world_model import train
from wm_helpers import TINY_LATENT, TINY_MODEL, lively_dit, save_tiny_vae, write_config, write_latent_shards


def inputs(frames: int = 4, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, frames, *TINY_LATENT, generator=g), torch.rand(batch, frames, generator=g),
            torch.randn(batch, frames, ACTION_DIM, generator=g).clamp(-1, 1), torch.randn(batch, 384, generator=g))


def frames(args, which: slice):
    """The latents, levels and actions of some frames; the prompt is per clip."""
    latents, levels, actions, prompt = args
    return latents[:, which], levels[:, which], actions[:, which], prompt


def test_trained_blocks_spread_evenly_in_order():
    assert block_positions(4, 6) == [0, 2, 3, 5]
    assert block_positions(1, 3) == [1]
    assert block_positions(3, 3) == [0, 1, 2]
    for old, new in ((2, 5), (4, 8), (3, 7)):
        positions = block_positions(old, new)
        assert positions == sorted(set(positions)) and 0 <= positions[0] and positions[-1] < new
    with pytest.raises(ValueError, match="cannot grow depth 4 into 3"):
        block_positions(4, 3)


def test_the_deeper_model_starts_as_the_shallow_one():
    shallow = lively_dit({**TINY_MODEL, "depth": 2}).eval()
    deeper = lively_dit({**TINY_MODEL, "depth": 4}, seed=5).eval()     # its new blocks random: made identity
    assert load_deeper(deeper, shallow) == [0, 2]
    with torch.no_grad():
        args = inputs()
        assert not torch.allclose(lively_dit({**TINY_MODEL, "depth": 4}, seed=5)(*args), shallow(*args), atol=1e-3)
        torch.testing.assert_close(deeper(*args), shallow(*args), atol=1e-5, rtol=1e-5)
        # streamed with cached context keys/values too: the new blocks' layers cache what they are given
        context, window = (frames(args, slice(0, 2)), frames(args, slice(2, None)))
        caches = {model: TemporalCache(4) for model in (shallow, deeper)}
        for model, cache in caches.items():
            model(*context, cache=cache, commit_frames=2)
        torch.testing.assert_close(deeper(*window, cache=caches[deeper]), shallow(*window, cache=caches[shallow]),
                                   atol=1e-5, rtol=1e-5)


def test_only_a_deeper_model_of_the_same_shape_grows():
    shallow = WorldDiT(**{**TINY_MODEL, "depth": 2})
    assert deepens(dict(shallow.config), dict(WorldDiT(**{**TINY_MODEL, "depth": 3}).config))
    assert not deepens(dict(shallow.config), dict(shallow.config))
    for other in ({"depth": 3, "width": 64}, {"depth": 1}):
        model = WorldDiT(**{**TINY_MODEL, **other})
        assert not deepens(dict(shallow.config), dict(model.config))
        with pytest.raises(CheckpointError, match="differs only in depth"):
            load_deeper(model, shallow)


def test_a_run_grows_from_a_shallower_bundle_and_trains_its_new_blocks(tmp_path, monkeypatch):
    monkeypatch.setenv("MATRIX_SIM_DTYPE", "float32")
    data = write_latent_shards(tmp_path / "latents", episodes=2)
    vae = save_tiny_vae(tmp_path / "vae")
    first = tmp_path / "first"
    train(write_config(tmp_path, data, first, vae, steps=2), progress=False)
    deeper = {**TINY_MODEL, "depth": 3}
    frozen = write_config(tmp_path, data, tmp_path / "frozen", vae, steps=1, lr=0.0, init_from=str(first),
                          model=deeper)
    train(frozen, progress=False)                                  # lr 0: the grown weights as they started
    shallow = load_model(WorldDiT, first / bundle.DIT_DIR).eval()
    grown = load_model(WorldDiT, tmp_path / "frozen" / bundle.DIT_DIR).eval()
    assert grown.config.depth == 3
    with torch.no_grad():
        torch.testing.assert_close(grown(*inputs()), shallow(*inputs()), atol=1e-5, rtol=1e-5)
    moving = write_config(tmp_path, data, tmp_path / "moving", vae, steps=2, init_from=str(first), model=deeper)
    train(moving, progress=False)
    weights = load_file(str(tmp_path / "moving" / bundle.DIT_DIR / "diffusion_pytorch_model.safetensors"))
    assert weights["blocks.0.modulation.1.weight"].abs().sum() > 0     # a new block (the trained one is at 1) learns
