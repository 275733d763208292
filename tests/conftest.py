"""Shared fixtures: one source world per test module (creating a GL context and shaders costs time; a
session-wide one would outlive modules that start and stop SDL's GL, which shares its EGL display), and a
few short recorded episodes for the autoencoder's training tests."""
import pytest

from matrix_sim.data.record import record
from matrix_sim.world.engine import SourceWorld


@pytest.fixture(scope="module")
def world():
    w = SourceWorld(256, 144)
    yield w
    w.close()


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory):
    """Two short recorded episodes at 128x72: data for the autoencoder's training tests."""
    return record(tmp_path_factory.mktemp("shards") / "rec", episodes=2, frames=6, seed=0, width=128, height=72,
                  progress=False)
