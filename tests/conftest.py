"""Shared fixtures: one source world per test module (creating a GL context and shaders costs time; a
session-wide one would outlive modules that start and stop SDL's GL, which shares its EGL display)."""
import pytest

from matrix_sim.world.engine import SourceWorld


@pytest.fixture(scope="module")
def world():
    w = SourceWorld(256, 144)
    yield w
    w.close()
