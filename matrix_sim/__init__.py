"""matrix-sim: a playable world simulator driven by a streaming video diffusion transformer."""

__version__ = "0.1.0"
