"""Shared fixtures: one source world per test session (creating a GL context and shaders costs time)."""
import pytest

from matrix_sim.world.engine import SourceWorld


@pytest.fixture(scope="session")
def world():
    w = SourceWorld(256, 144)
    yield w
    w.close()
