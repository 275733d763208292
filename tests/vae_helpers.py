"""A tiny autoencoder and a training config for it: the autoencoder tests' shared pieces."""
import yaml

TINY_MODEL = {"latent_channels": 4, "channels": [8, 8, 8], "decoder_blocks": [1, 1, 1], "encoder_blocks": [1, 1, 1]}


def tiny_config(tmp_path, data_dir, steps=3):
    config = {"model": TINY_MODEL, "data": {"dirs": [str(data_dir)], "frame_stride": 1, "crop": [32, 64]},
              "train": {"batch_size": 2, "steps": steps, "warmup_steps": 1, "log_every": 1, "save_every": steps},
              "loss": {}, "run_dir": str(tmp_path / "run")}
    path = tmp_path / "vae.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
