"""WorldDiT: shapes, causal temporal attention, cached context, and checkpoints that fail clearly."""
import json

import pytest
import torch

from matrix_sim.models.checkpoint import CheckpointError, load_model, save_model
from matrix_sim.models.dit import TemporalAttention, TemporalCache, WorldDiT, rope_tables

from wm_helpers import TINY_MODEL, one_thread  # noqa: F401 (autouse fixture)


def randomised(model: WorldDiT) -> WorldDiT:
    """adaLN-Zero starts every block as the identity; give all layers weights so every path is exercised."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.1)
    return model.eval()


def inputs(frames: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, frames, 4, 4, 6, generator=g), torch.rand(2, frames, generator=g),
            torch.randn(2, frames, 5, generator=g), torch.randn(2, 384, generator=g))


def test_forward_shape_and_zero_initial_output():
    x, s, a, p = inputs(5)
    v = WorldDiT(**TINY_MODEL)(x, s, a, p)
    assert v.shape == x.shape
    assert torch.count_nonzero(v) == 0          # adaLN-Zero: an untrained model predicts v = 0


@pytest.mark.parametrize("neighbours", [0, 1])
def test_temporal_attention_is_causal(neighbours):
    model = randomised(WorldDiT(**TINY_MODEL, neighbours=neighbours))
    x, s, a, p = inputs(6)
    changed = x.clone()
    changed[:, 4:] += 1.0
    with torch.no_grad():
        before, after = model(x, s, a, p), model(changed, s, a, p)
    assert torch.allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert not torch.allclose(before[:, 4:], after[:, 4:])


@pytest.mark.parametrize("neighbours", [0, 1])
def test_cached_context_gives_the_same_prediction(neighbours):
    model = randomised(WorldDiT(**TINY_MODEL, neighbours=neighbours))
    x, s, a, p = inputs(7)
    cache = TemporalCache(max_frames=8)
    with torch.no_grad():
        full = model(x, s, a, p)
        model(x[:, :3], s[:, :3], a[:, :3], p, cache=cache, commit_frames=3)
        rest = model(x[:, 3:], s[:, 3:], a[:, 3:], p, cache=cache)
    assert cache.frames() == 3 and cache.position == 3
    assert torch.allclose(full[:, 3:], rest, atol=1e-5)


def test_the_neighbour_read_starts_as_the_model_it_extends():
    """Its output projection starts at zero, so a trained model's weights continue unchanged with it."""
    plain = randomised(WorldDiT(**TINY_MODEL))
    extended = WorldDiT(**TINY_MODEL, neighbours=1)
    missing = extended.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".near_" in key for key in missing)
    x, s, a, p = inputs(5)
    with torch.no_grad():
        assert torch.allclose(plain(x, s, a, p), extended.eval()(x, s, a, p), atol=1e-6)


@pytest.mark.parametrize("neighbours", [0, 1])
def test_a_token_reads_the_previous_frame_next_door_only_with_the_neighbour_read(neighbours):
    """Temporal attention alone keeps each token position to itself; the neighbour read reaches one token away
    (and no further) in earlier frames."""
    attention = TemporalAttention(16, 2, neighbours)
    torch.manual_seed(0)
    for module in attention.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.3)
    rows, cols, frames = 3, 5, 3
    rope = rope_tables(torch.arange(frames), 8)
    x = torch.randn(rows * cols, frames, 16)
    changed = x.clone()
    changed[1 * cols + 1, 0] += 1.0                   # position (1, 1), the first frame
    with torch.no_grad():
        diff = (attention(changed, rope, 0, None, 0, (rows, cols)) - attention(x, rope, 0, None, 0, (rows, cols)))
    moved = diff[:, 1:].abs().amax(dim=(1, 2)).reshape(rows, cols) > 1e-6      # later frames, per position
    expected = torch.zeros(rows, cols, dtype=torch.bool)
    if neighbours:
        expected[0:3, 0:3] = True
    else:
        expected[1, 1] = True
    assert torch.equal(moved, expected)


def test_every_projection_is_one_matmul_in_bfloat16():
    """The temporal attention sees each token position's frames as a row; handed to its projections as a strided
    view, bfloat16 matmuls copy the weight once per position (a batched matmul), which makes the stream call
    about twice as slow as float32 on a CPU with AMX (docs/performance.md)."""
    model = randomised(WorldDiT(**TINY_MODEL))
    x, s, a, p = (t[:1] for t in inputs(6))          # the stream's batch of one, where the view was strided
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16), \
            torch.profiler.profile(record_shapes=True) as prof:
        model(x, s, a, p)
    batched = [e.input_shapes for e in prof.events() if e.name == "aten::bmm"]
    assert batched == []


def test_cache_is_bounded():
    cache = TemporalCache(max_frames=2)
    for _ in range(5):
        cache.append(0, torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3, 4))
    assert cache.frames() == 2


def test_save_and_load_round_trip(tmp_path):
    model = randomised(WorldDiT(**TINY_MODEL))
    save_model(model, tmp_path / "dit")
    loaded = load_model(WorldDiT, tmp_path / "dit", expected=TINY_MODEL)
    x, s, a, p = inputs(3)
    with torch.no_grad():
        assert torch.equal(model(x, s, a, p), loaded.eval()(x, s, a, p))


def test_missing_checkpoint_names_the_file(tmp_path):
    WorldDiT(**TINY_MODEL).save_pretrained(tmp_path / "dit")
    (tmp_path / "dit" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="diffusion_pytorch_model.safetensors"):
        load_model(WorldDiT, tmp_path / "dit")


def test_config_mismatch_names_the_keys(tmp_path):
    WorldDiT(**TINY_MODEL).save_pretrained(tmp_path / "dit")
    with pytest.raises(CheckpointError) as info:
        load_model(WorldDiT, tmp_path / "dit", expected={**TINY_MODEL, "width": 64, "depth": 3})
    message = str(info.value)
    assert "width: checkpoint has 32, config has 64" in message and "depth: checkpoint has 1, config has 3" in message
    assert "heads" not in message


def test_wrong_class_is_refused(tmp_path):
    WorldDiT(**TINY_MODEL).save_pretrained(tmp_path / "dit")
    config = json.loads((tmp_path / "dit" / "config.json").read_text())
    (tmp_path / "dit" / "config.json").write_text(json.dumps({**config, "_class_name": "FrameAutoencoder"}))
    with pytest.raises(CheckpointError, match="holds a FrameAutoencoder"):
        load_model(WorldDiT, tmp_path / "dit")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    WorldDiT(**TINY_MODEL).save_pretrained(tmp_path / "dit")
    config = json.loads((tmp_path / "dit" / "config.json").read_text())
    (tmp_path / "dit" / "config.json").write_text(json.dumps({**config, "depth": 2}))
    with pytest.raises(CheckpointError, match="disagree .* missing keys"):    # diffusers would only warn
        load_model(WorldDiT, tmp_path / "dit")
