"""Landmarks placed per chunk: trees, cacti, rocks, buildings and street poles.

Each prop is one or more instances of a unit mesh (box, cone, rock), as rows of INSTANCE_FIELDS; the
renderer draws every instance of a mesh in one call. Placement is a pure function of (seed, chunk).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from matrix_sim.world.settings import BiomeLook, WorldSettings
from matrix_sim.world.terrain import height, road_centre, road_distance

# x y z | size x y z | yaw | r g b | kind
INSTANCE_FIELDS = 11
MESHES = ("box", "cone", "rock")
KIND_PLAIN, KIND_WINDOWS, KIND_LAMP, KIND_HEADLIGHT, KIND_TAILLIGHT = 0.0, 1.0, 2.0, 3.0, 4.0
TRUNK_COLOR = (0.36, 0.24, 0.14)
POLE_COLOR = (0.35, 0.35, 0.38)
CACTUS_COLOR = (0.25, 0.55, 0.22)
BUILDING_COLORS = ((0.62, 0.60, 0.56), (0.48, 0.52, 0.58), (0.70, 0.64, 0.55), (0.40, 0.40, 0.44), (0.75, 0.72, 0.68))


@dataclass
class ChunkProps:
    instances: dict = field(default_factory=lambda: {m: [] for m in MESHES})
    solids: list = field(default_factory=list)      # (x, z, radius) the bodies cannot enter

    def add(self, mesh, pos, size, yaw, color, kind=KIND_PLAIN):
        self.instances[mesh].append((*pos, *size, yaw, *color, kind))

    def arrays(self):
        inst = {m: np.asarray(v, dtype=np.float32).reshape(-1, INSTANCE_FIELDS) for m, v in self.instances.items()}
        return inst, np.asarray(self.solids, dtype=np.float64).reshape(-1, 3)


class PropPlacer:
    def __init__(self, settings: WorldSettings, seed: int, biome: str):
        self.s, self.seed, self.look = settings, seed, settings.biomes[biome]
        self.biome_index = list(settings.biomes).index(biome)

    def _ground(self, x, z):
        return height(x, z, self.seed, self.look, self.s.roads, self.s.terrain)

    def _candidates(self, rng, cx, cz, count, clearance):
        """Random points in the chunk, away from roads and above water."""
        size = self.s.terrain.chunk_size
        x = (cx + rng.random(count)) * size
        z = (cz + rng.random(count)) * size
        ok = road_distance(x, z, self.seed, self.s.roads) > self.s.roads.width * 0.5 + clearance
        y = self._ground(x, z)
        if self.look.water:
            ok &= y > self.s.terrain.water_level + 0.4
        return x[ok], y[ok], z[ok]

    def place(self, cx: int, cz: int) -> ChunkProps:
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, cx & 0xFFFFFFFF, cz & 0xFFFFFFFF, self.biome_index])
        props = ChunkProps()
        look: BiomeLook = self.look
        for x, y, z in zip(*self._candidates(rng, cx, cz, look.trees, 2.5)):
            tall = rng.uniform(4.0, 8.0)
            props.add("box", (x, y, z), (0.45, tall * 0.45, 0.45), 0.0, TRUNK_COLOR)
            tint = np.clip(np.asarray(look.tree_color) * rng.uniform(0.8, 1.2), 0, 1)
            props.add("cone", (x, y + tall * 0.3, z), (tall * 0.45, tall * 0.8, tall * 0.45), rng.uniform(0, 6.3), tint)
            props.solids.append((x, z, 0.6))
        for x, y, z in zip(*self._candidates(rng, cx, cz, look.cacti, 2.0)):
            tall = rng.uniform(2.0, 4.0)
            props.add("box", (x, y, z), (0.5, tall, 0.5), 0.0, CACTUS_COLOR)
            props.add("box", (x + 0.5, y + tall * 0.45, z), (0.9, 0.35, 0.35), 0.0, CACTUS_COLOR)
            props.solids.append((x, z, 0.5))
        for x, y, z in zip(*self._candidates(rng, cx, cz, look.rocks, 2.0)):
            r = rng.uniform(0.8, 2.6)
            shade = np.clip(np.asarray(look.rock) * rng.uniform(0.85, 1.15), 0, 1)
            props.add("rock", (x, y - 0.3 * r, z), (r, r * rng.uniform(0.6, 1.1), r), rng.uniform(0, 6.3), shade)
            props.solids.append((x, z, r * 0.8))
        self._place_buildings(rng, cx, cz, props)
        self._place_poles(cx, cz, props)
        return props

    def _place_buildings(self, rng, cx, cz, props):
        placed = []
        for x, y, z in zip(*self._candidates(rng, cx, cz, self.look.buildings * 3, 4.0)):
            if len(placed) >= self.look.buildings:
                break
            w, d = rng.uniform(8, 18), rng.uniform(8, 18)
            radius = 0.5 * np.hypot(w, d)
            if road_distance(x, z, self.seed, self.s.roads) < self.s.roads.width * 0.5 + 2.0 + radius:
                continue
            if any(np.hypot(x - px, z - pz) < radius + pr + 2.0 for px, pz, pr in placed):
                continue
            tall = rng.choice([rng.uniform(6, 14), rng.uniform(14, 40)])
            color = BUILDING_COLORS[rng.integers(len(BUILDING_COLORS))]
            props.add("box", (x, y - 1.0, z), (w, tall + 1.0, d), 0.0, color, KIND_WINDOWS)
            placed.append((x, z, radius))
            props.solids.append((x, z, radius * 0.85))

    def _place_poles(self, cx, cz, props):
        """Street poles with lamps at fixed spacing along both sides of every road through the chunk."""
        roads, size = self.s.roads, self.s.terrain.chunk_size
        lo_x, lo_z = cx * size, cz * size
        along = np.arange(0.0, size, roads.pole_spacing)
        for axis, (cross_lo, along_lo) in enumerate(((lo_x, lo_z), (lo_z, lo_x))):
            t = along_lo + along
            k_lo = np.floor((cross_lo - roads.amplitude - roads.width) / roads.spacing)
            k_hi = np.ceil((cross_lo + size + roads.amplitude + roads.width) / roads.spacing)
            for k in np.arange(k_lo, k_hi + 1):
                centre, _ = road_centre(k, t, self.seed, axis, roads)
                for side in (-1.0, 1.0):
                    c = centre + side * (roads.width * 0.5 + 1.2)
                    x, z = (c, t) if axis == 0 else (t, c)
                    inside = (x >= lo_x) & (x < lo_x + size) & (z >= lo_z) & (z < lo_z + size)
                    for px, pz in zip(x[inside], z[inside]):
                        py = float(self._ground(px, pz))
                        if self.look.water and py < self.s.terrain.water_level + 0.4:
                            continue
                        props.add("box", (px, py, pz), (0.22, 6.0, 0.22), 0.0, POLE_COLOR)
                        props.add("box", (px - side * 0.5 * (axis == 0), py + 6.0, pz - side * 0.5 * (axis == 1)),
                                  (0.7, 0.25, 0.7), 0.0, (0.9, 0.88, 0.7), KIND_LAMP)
                        props.solids.append((px, pz, 0.3))
