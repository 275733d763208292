"""The frame autoencoder: shapes, the shipped checkpoint's round trip, training under DDP, error paths."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from matrix_sim.config import ConfigError
from matrix_sim.eval.metrics import psnr
from matrix_sim.eval.vae_eval import reconstruct
from matrix_sim.models.autoencoder import LATENT_STRIDE, FrameAutoencoder, images_to_tensor, tensor_to_images
from matrix_sim.models.checkpoint import CheckpointError
from matrix_sim.models.loading import load_autoencoder
from matrix_sim.train.vae import load_vae_config, reconstruction_loss, LossWeights

from vae_helpers import TINY_MODEL, tiny_config

SHIPPED_PSNR_FLOOR_DB = 24.0     # the shipped codec gives 25.4 dB on this frame; an untrained one ~18


def test_shapes_and_latent_clamp():
    model = FrameAutoencoder(**TINY_MODEL)
    x = torch.rand(2, 3, 144, 256) * 2 - 1
    z = model.encode(x)
    assert z.shape == (2, 4, 18, 32) and model.decode(z).shape == x.shape
    last = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.mul_(1000.0)                       # raw latents far past the bound
        raw = model.encoder(x)
        z = model.encode(x)
    assert raw.abs().max() > 10.0
    assert 2.9 < z.abs().max() <= 3.0 and torch.equal(z.sign(), raw.sign())   # tanh saturates at the bound


def test_image_tensor_round_trip_is_exact():
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tensor_to_images(images_to_tensor(images)), images)


def test_loss_reports_psnr_of_the_reconstruction():
    target = torch.zeros(1, 3, 8, 8)
    _, stats = reconstruction_loss(target + 0.02, target, LossWeights())
    assert stats["psnr"] == pytest.approx(10 * np.log10(4 / 0.02**2), rel=1e-4)


def test_shipped_checkpoint_round_trips_a_rendered_frame(world):
    model = load_autoencoder()
    frame = world.reset("drive grassland by day", 2**31 + 5)
    recon = reconstruct(model, frame.image[None])[0]
    assert psnr(frame.image, recon) > SHIPPED_PSNR_FLOOR_DB


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_autoencoder(tmp_path / "nowhere")


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    FrameAutoencoder(**TINY_MODEL).save_pretrained(tmp_path / "vae")
    config = json.loads((tmp_path / "vae" / "config.json").read_text())
    config["channels"] = [16, 8, 8]
    (tmp_path / "vae" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="disagree|cannot load"):
        load_autoencoder(tmp_path / "vae")


def test_malformed_training_config_names_the_key(tmp_path, small_shards):
    path = tiny_config(tmp_path, small_shards)
    config = yaml.safe_load(path.read_text())
    config["train"]["learning_speed"] = 3
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="learning_speed"):
        load_vae_config(path)
    config["train"].pop("learning_speed")
    config["stages"] = {"decoder": None}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="stages.decoder: expected a mapping"):
        load_vae_config(path, "decoder")


def test_the_shipped_codec_recipe_chains_its_stages():
    """configs/vae-tiny.yaml: the shipped codec's architecture, then stages that each start from the run before."""
    from matrix_sim.config import CONFIG_DIR, DEFAULT_VAE_DIR

    path = CONFIG_DIR / "vae-tiny.yaml"
    first, decoder, adversarial = (load_vae_config(path, stage) for stage in (None, "decoder", "adversarial"))
    shipped = json.loads((DEFAULT_VAE_DIR / "config.json").read_text())
    assert {key: shipped[key] for key in first.model} == first.model
    assert decoder.init_from == f"{first.run_dir}/vae" and adversarial.init_from == f"{decoder.run_dir}/vae"
    assert decoder.freeze_encoder and adversarial.freeze_encoder and not first.freeze_encoder
    assert decoder.model == first.model and decoder.data == first.data and decoder.train.ema_decay == 0.999
    assert adversarial.adversarial.weight > 0 and not decoder.adversarial.weight
    with pytest.raises(ConfigError, match="no stage 'decodr'"):
        load_vae_config(path, "decodr")


def test_training_resumes_and_exports(tmp_path, small_shards):
    from matrix_sim.train.vae import train_vae

    path = tiny_config(tmp_path, small_shards, steps=2)
    exported = train_vae(path, progress=False)
    assert torch.load(tmp_path / "run" / "latest.pt", weights_only=True)["step"] == 2
    train_vae(path, steps=4, progress=False)
    assert torch.load(tmp_path / "run" / "latest.pt", weights_only=True)["step"] == 4
    model = load_autoencoder(exported)
    assert model.config.scaling_factor > 0


def test_a_new_run_can_start_from_shipped_weights(tmp_path, small_shards):
    from matrix_sim.train.vae import train_vae

    shipped = FrameAutoencoder(**TINY_MODEL)
    shipped.save_pretrained(tmp_path / "shipped")
    path = tiny_config(tmp_path, small_shards, steps=1)
    config = yaml.safe_load(path.read_text())
    config["init_from"] = str(tmp_path / "shipped")
    config["train"]["lr"] = 1e-12          # one step that barely moves: the weights must be the shipped ones
    path.write_text(yaml.safe_dump(config))
    exported = load_autoencoder(train_vae(path, progress=False))
    for name, value in shipped.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[name], value, atol=1e-6, rtol=0)
    config["model"] = {**TINY_MODEL, "channels": [16, 8, 8]}
    config["run_dir"] = str(tmp_path / "other")
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError, match="channels"):
        train_vae(path, progress=False)


def test_a_decoder_only_run_keeps_the_latents_the_world_model_knows(tmp_path, small_shards):
    """freeze_encoder: the decoder learns, the encoder and the latent normalisation stay the shipped ones, so a
    world model trained on the shipped latents can use the new decoder as it is."""
    from matrix_sim.train.vae import train_vae

    shipped = FrameAutoencoder(**TINY_MODEL, scaling_factor=2.5, shift_factor=0.25)
    shipped.save_pretrained(tmp_path / "shipped")
    path = tiny_config(tmp_path, small_shards, steps=3)
    config = yaml.safe_load(path.read_text())
    config.update(init_from=str(tmp_path / "shipped"), freeze_encoder=True)
    config["train"]["ema_decay"] = 0.0        # the export is the trained weights, so a moved decoder shows in it
    path.write_text(yaml.safe_dump(config))
    exported = load_autoencoder(train_vae(path, progress=False))
    assert (exported.config.scaling_factor, exported.config.shift_factor) == (2.5, 0.25)
    for name, value in shipped.encoder.state_dict().items():
        torch.testing.assert_close(exported.encoder.state_dict()[name], value, atol=0, rtol=0)
    moved = [name for name, value in shipped.decoder.state_dict().items()
             if not torch.equal(exported.decoder.state_dict()[name], value)]
    assert moved, "the decoder did not learn"


def test_moved_latents_slide_between_latent_pixels():
    from matrix_sim.eval.vae_eval import moved_latents

    latents = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    torch.testing.assert_close(moved_latents(latents, 0.0, 0.0), latents[:, :, :-1, :-1])
    torch.testing.assert_close(moved_latents(latents, 1.0, 1.0), latents[:, :, 1:, 1:])
    torch.testing.assert_close(moved_latents(latents, 0.0, 0.25), latents[:, :, :-1, :-1] + 0.25)
    torch.testing.assert_close(moved_latents(latents, 0.5, 0.0), latents[:, :, :-1, :-1] + 2.0)
    with pytest.raises(ValueError, match="fraction"):
        moved_latents(latents, 0.0, 1.5)


@pytest.mark.parametrize("rows, cols", [(0, LATENT_STRIDE), (LATENT_STRIDE, 0)])
def test_latents_moved_a_latent_pixel_show_the_moved_picture(world, rows, cols):
    """Moved by a whole latent pixel, the shipped codec's latents decode to the picture moved by 8 pixels (a
    convolutional codec is equivariant to that), which is what moved_crop cuts out, not the unmoved picture:
    the pairing eval-vae's moved-latent figure scores."""
    from matrix_sim.eval.vae_eval import moved_crop, moved_latents

    model = load_autoencoder()
    x = images_to_tensor(world.reset("drive city at night", 2**31 + 9).image[None])
    with torch.no_grad():
        moved = tensor_to_images(model.decode(moved_latents(model.encode(x), rows / LATENT_STRIDE, cols / LATENT_STRIDE)))
        own = tensor_to_images(model(moved_crop(x, rows, cols)))
    truth, unmoved = tensor_to_images(moved_crop(x, rows, cols)), tensor_to_images(moved_crop(x, 0, 0))
    assert psnr(truth, moved) > psnr(truth, own) - 1.5
    assert psnr(truth, moved) > psnr(unmoved, moved) + 3


def test_a_decoder_only_run_needs_the_codec_to_keep(tmp_path, small_shards):
    path = tiny_config(tmp_path, small_shards)
    config = yaml.safe_load(path.read_text())
    config["freeze_encoder"] = True
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="freeze_encoder needs init_from"):
        load_vae_config(path)


@pytest.mark.parametrize("adversarial", [{}, {"weight": 0.5, "channels": [8, 16], "start_step": 1}],
                         ids=["reconstruction", "adversarial"])
def test_ddp_training_with_two_cpu_processes(tmp_path, small_shards, adversarial):
    """Both processes end with the same decoder; with a discriminator too (its own DDP, and the adaptive weight's
    gradients taken before DDP's backward)."""
    path = tiny_config(tmp_path, small_shards, steps=3)
    config = yaml.safe_load(path.read_text())
    config["adversarial"] = adversarial
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "matrix_sim", "-q", "train-vae", "--config", str(path), "--device", "cpu"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "on 2 process(es); replicas in sync" in result.stderr
    state = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert state["step"] == 3 and ("discriminator" in state) == bool(adversarial)


def test_episodes_are_read_ahead_in_order(monkeypatch):
    import random
    import time

    from matrix_sim.data import encode

    def slow_read(path):
        time.sleep(random.uniform(0, 0.01))
        return path

    monkeypatch.setattr(encode, "read_episode", slow_read)
    paths = list(range(11))
    assert list(encode.read_ahead(paths, depth=3)) == paths


def test_encode_writes_latent_shards(tmp_path, small_shards):
    from matrix_sim.data.encode import LATENT_FORMAT, encode_dataset
    from matrix_sim.data.shards import read_manifest

    FrameAutoencoder(**TINY_MODEL, scaling_factor=2.0).save_pretrained(tmp_path / "vae")
    out = encode_dataset(small_shards, tmp_path / "latents", tmp_path / "vae", progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == LATENT_FORMAT and manifest["scaling_factor"] == 2.0
    assert manifest["latent_shape"] == [4, 9, 16]
    with np.load(out / "episode_000000.npz") as data:
        assert data["latents"].shape == (6, 4, 9, 16) and data["latents"].dtype == np.float16
        source = np.load(small_shards / "episode_000000.npz")
        np.testing.assert_array_equal(data["actions"], source["actions"])
    assert len(manifest["episodes"]) == len(read_manifest(small_shards)["episodes"])


def test_eval_vae_reports_how_much_sharpness_the_codec_keeps(tmp_path, monkeypatch):
    """A checkerboard is all edges; a codec whose decoder gives back a flat picture has none: eval-vae's edge
    density says so. (An untrained codec's output is not reliably a blur: its edges depend on the random init.)"""
    from matrix_sim.eval import vae_eval
    from matrix_sim.eval.heldout import HeldoutClip, heldout_scenes

    squares = (np.indices((72, 128)) // 4).sum(0) % 2 * 255
    frames = np.repeat(squares[None, ..., None], 2, axis=0).repeat(3, axis=-1).astype(np.uint8)
    clip = HeldoutClip(heldout_scenes()[0], frames, np.zeros((2, 5), np.float32))
    monkeypatch.setattr(vae_eval, "heldout_clips", lambda frames_per_scene: [clip])
    flat = FrameAutoencoder(**TINY_MODEL)
    with torch.no_grad():
        flat.decoder_output_layer.weight.zero_()
        flat.decoder_output_layer.bias.zero_()
    flat.save_pretrained(tmp_path / "vae")
    result = vae_eval.eval_vae(tmp_path / "vae", frames_per_scene=2, progress=False)
    assert result["frames"] == 2
    assert result["edge_density"]["real"] > 0.3            # 0.43: a gradient at every square's border
    assert result["edge_density"]["reconstructed"] < 0.5 * result["edge_density"]["real"]
    assert set(result["pan"]["moved_by_pixels"]) == {"2", "4", "6"} and result["pan"]["own_psnr_db"] > 0
