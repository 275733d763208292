"""The playable generated world: the Swin-DPM sampler and WorldModel (World protocol)."""
from matrix_sim.stream.world_model import WorldModel

__all__ = ["WorldModel"]
