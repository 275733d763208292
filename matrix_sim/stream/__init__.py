"""The playable generated world: the Swin-DPM sampler and WorldModel (World protocol).

WorldModel is imported on first use, not with the package: the sampler process (stream/sampler_process.py)
imports only the sampler and the DiT, and starts sooner without the autoencoder and the source world.
"""

__all__ = ["WorldModel"]


def __getattr__(name: str):
    if name == "WorldModel":
        from matrix_sim.stream.generated_world import WorldModel

        return WorldModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
