"""Endless, seeded terrain and roads: heights, road distance, chunk meshes and prop placement.

Everything is a pure function of (seed, biome, position), so any chunk can be rebuilt anywhere, in any
order, with the same result: that is what makes recording deterministic and the world endless.
The road formula is mirrored in the terrain shader (roads are drawn per pixel, not per vertex).
"""
from __future__ import annotations

import numpy as np

from matrix_sim.world.settings import BiomeLook, RoadSettings, TerrainSettings

GOLDEN = 0.6180339887498949
_M32 = np.uint64(0xFFFFFFFF)


def _hash2(ix: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Integer lattice hash to [0, 1); uint64 array arithmetic wraps silently, as intended."""
    shape = np.shape(ix)
    salt = np.uint64((seed * 2246822519) & 0xFFFFFFFF)
    h = (np.array(ix, dtype=np.int64, ndmin=1).astype(np.uint64) * np.uint64(374761393)
         + np.array(iz, dtype=np.int64, ndmin=1).astype(np.uint64) * np.uint64(668265263) + salt) & _M32
    h = ((h ^ (h >> np.uint64(13))) * np.uint64(1274126177)) & _M32
    h = h ^ (h >> np.uint64(16))
    return (h.astype(np.float64) / 4294967296.0).reshape(shape)


def value_noise(x: np.ndarray, z: np.ndarray, seed: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] on a unit lattice."""
    x0, z0 = np.floor(x), np.floor(z)
    fx, fz = x - x0, z - z0
    ux, uz = fx * fx * (3 - 2 * fx), fz * fz * (3 - 2 * fz)
    ix, iz = x0.astype(np.int64), z0.astype(np.int64)
    a, b, c, d = _hash2(np.stack([ix, ix + 1, ix, ix + 1]), np.stack([iz, iz, iz + 1, iz + 1]), seed)
    return 2.0 * ((a + (b - a) * ux) * (1 - uz) + (c + (d - c) * ux) * uz) - 1.0


def fbm(x: np.ndarray, z: np.ndarray, seed: int, octaves: int = 3) -> np.ndarray:
    total, amp, freq, norm = 0.0, 1.0, 1.0, 0.0
    for octave in range(octaves):
        total = total + amp * value_noise(x * freq, z * freq, seed + 101 * octave)
        norm += amp
        amp *= 0.5
        freq *= 2.0
    return total / norm


def road_phase(k: np.ndarray, seed: int, axis: int) -> np.ndarray:
    """Meander phase of road number k; the shader computes the same."""
    offset = ((seed * 0.1234567) % 1.0 + 0.5 * axis) % 1.0
    return 2 * np.pi * np.mod(np.asarray(k, dtype=np.float64) * GOLDEN + offset, 1.0)


def road_centre(k: np.ndarray, along: np.ndarray, seed: int, axis: int, roads: RoadSettings):
    """Cross-road coordinate of road k at `along`, and its slope d(cross)/d(along)."""
    w = 2 * np.pi / roads.wavelength
    phase = road_phase(k, seed, axis)
    return (k * roads.spacing + roads.amplitude * np.sin(along * w + phase),
            roads.amplitude * w * np.cos(along * w + phase))


def _axis_distance(cross, along, seed, axis, roads):
    """Distance to the nearest road of one family (axis 0: roads running along z; 1: along x)."""
    k0 = np.round(cross / roads.spacing)
    best = np.full(np.shape(cross), np.inf)
    for dk in (-1.0, 0.0, 1.0):
        centre, slope = road_centre(k0 + dk, along, seed, axis, roads)
        best = np.minimum(best, np.abs(cross - centre) / np.sqrt(1 + slope * slope))
    return best


def road_distance(x, z, seed: int, roads: RoadSettings) -> np.ndarray:
    x, z = np.asarray(x, dtype=np.float64), np.asarray(z, dtype=np.float64)
    return np.minimum(_axis_distance(x, z, seed, 0, roads), _axis_distance(z, x, seed, 1, roads))


def height(x, z, seed: int, biome: BiomeLook, roads: RoadSettings, terrain: TerrainSettings) -> np.ndarray:
    """Ground height: large hills everywhere, small bumps fading out near roads; roads stay above water."""
    x, z = np.asarray(x, dtype=np.float64), np.asarray(z, dtype=np.float64)
    large = biome.base_height + biome.hills * fbm(x / 420.0, z / 420.0, seed + 7, octaves=2)
    small = biome.detail * fbm(x / 45.0, z / 45.0, seed + 13, octaves=2)
    d = road_distance(x, z, seed, roads)
    t = np.clip((d - roads.width * 0.5) / roads.flatten, 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    road_level = np.maximum(large, terrain.water_level + 0.8) if biome.water else large
    return road_level + (large + small - road_level) * t


def chunk_mesh(cx: int, cz: int, seed: int, biome: BiomeLook, roads: RoadSettings,
               terrain: TerrainSettings) -> tuple[np.ndarray, np.ndarray]:
    """One chunk as a vertex grid (x, y, z, nx, ny, nz) float32 and triangle indices into it (uint32).

    Indexed, because llvmpipe shades each vertex once per draw when it can reuse it.
    """
    n, size = terrain.chunk_quads, terrain.chunk_size
    step = size / n
    xs = cx * size + np.arange(-1, n + 2) * step
    zs = cz * size + np.arange(-1, n + 2) * step
    gx, gz = np.meshgrid(xs, zs, indexing="xy")
    h = height(gx, gz, seed, biome, roads, terrain)
    # central-difference normals on the padded grid, then drop the padding
    dhx = (h[1:-1, 2:] - h[1:-1, :-2]) / (2 * step)
    dhz = (h[2:, 1:-1] - h[:-2, 1:-1]) / (2 * step)
    normal = np.stack([-dhx, np.ones_like(dhx), -dhz], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    pos = np.stack([gx[1:-1, 1:-1], h[1:-1, 1:-1], gz[1:-1, 1:-1]], axis=-1)
    verts = np.concatenate([pos, normal], axis=-1).reshape(-1, 6).astype(np.float32)
    grid = np.arange((n + 1) * (n + 1), dtype=np.uint32).reshape(n + 1, n + 1)
    a, b, c, d = grid[:-1, :-1], grid[:-1, 1:], grid[1:, :-1], grid[1:, 1:]
    indices = np.stack([a, c, b, b, c, d], axis=-1).reshape(-1)
    return verts, indices


def road_heading(x: float, z: float, yaw: float, seed: int, roads: RoadSettings, lookahead: float):
    """The nearest road's point `lookahead` metres ahead in the direction closest to `yaw`, and the
    distance to that road: what a driver aiming to follow the road steers toward."""
    nearest = []
    for axis, (cross, along) in enumerate(((x, z), (z, x))):
        k = np.round(cross / roads.spacing) + np.array([-1.0, 0.0, 1.0])
        centre, slope = road_centre(k, along, seed, axis, roads)
        distance = np.abs(cross - centre) / np.sqrt(1 + slope * slope)
        best = int(np.argmin(distance))
        nearest.append((float(distance[best]), axis, float(k[best])))
    distance, axis, k = min(nearest)
    forward_along = -np.cos(yaw) if axis == 0 else np.sin(yaw)
    along = (z if axis == 0 else x) + (lookahead if forward_along >= 0 else -lookahead)
    centre, _ = road_centre(k, along, seed, axis, roads)
    target = (float(centre), float(along)) if axis == 0 else (float(along), float(centre))
    return target, distance
