"""The source world's tunables (matrix_sim/resources/world.yaml) as dataclasses."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from matrix_sim.config import ConfigError, from_dict, load_yaml, resource
from matrix_sim.world.scenes import BIOMES, TIMES, WEATHERS


@dataclass(frozen=True)
class TerrainSettings:
    chunk_size: float
    chunk_quads: int
    view_chunks: int
    prop_chunks: int
    water_level: float

    @property
    def prop_range(self) -> float:
        """Distance within which props are always loaded, wherever the camera is in its chunk."""
        return self.prop_chunks * self.chunk_size


@dataclass(frozen=True)
class RoadSettings:
    spacing: float
    amplitude: float
    wavelength: float
    width: float
    flatten: float
    pole_spacing: float


@dataclass(frozen=True)
class CameraSettings:
    fov_y_deg: float
    near: float
    far: float
    chase_back: float
    chase_up: float
    eye_height: float
    walk_pitch_deg: float


@dataclass(frozen=True)
class DriveSettings:
    max_speed: float
    boost_speed: float
    accel: float
    boost_accel: float
    brake_decel: float
    reverse_speed: float
    rolling_decel: float
    max_yaw_rate: float


@dataclass(frozen=True)
class WalkSettings:
    speed: float
    run_speed: float
    yaw_rate: float


@dataclass(frozen=True)
class BiomeLook:
    ground: list
    ground_alt: list
    rock: list
    hills: float          # amplitude of the large-scale relief (m)
    detail: float         # amplitude of small bumps, faded out near roads (m)
    base_height: float    # mean ground height; below water_level means sea
    trees: int            # props per chunk
    rocks: int
    cacti: int
    buildings: int
    tree_color: list
    water: bool


@dataclass(frozen=True)
class TimeLook:
    sun_dir: list
    sun_color: list
    ambient: list
    sky_top: list
    sky_horizon: list
    lights_on: bool


@dataclass(frozen=True)
class WeatherLook:
    fog_density: float
    fog_tint: list
    particles: float
    particle_kind: int    # 0 none, 1 rain streaks, 2 snowflakes
    darken: float


@dataclass(frozen=True)
class WorldSettings:
    frame_rate: float
    terrain: TerrainSettings
    roads: RoadSettings
    camera: CameraSettings
    drive: DriveSettings
    walk: WalkSettings
    body_radius: float
    biomes: dict
    times: dict
    weathers: dict

    @property
    def dt(self) -> float:
        return 1.0 / self.frame_rate


def _table(cls, data, names, where):
    if not isinstance(data, dict) or set(data) != set(names):
        raise ConfigError(f"{where}: must define exactly {list(names)}")
    return {n: from_dict(cls, data[n], f"{where}.{n}") for n in names}


def load_world_settings(path: str | Path = resource("world.yaml")) -> WorldSettings:
    data = load_yaml(path)
    where = str(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    nested = {
        "terrain": TerrainSettings, "roads": RoadSettings, "camera": CameraSettings,
        "drive": DriveSettings, "walk": WalkSettings,
    }
    data = dict(data)
    for key, cls in nested.items():
        data[key] = from_dict(cls, data.get(key), f"{where}: {key}")
    data["biomes"] = _table(BiomeLook, data.get("biomes"), BIOMES, f"{where}: biomes")
    data["times"] = _table(TimeLook, data.get("times"), TIMES, f"{where}: times")
    data["weathers"] = _table(WeatherLook, data.get("weathers"), WEATHERS, f"{where}: weathers")
    return from_dict(WorldSettings, data, where)


@lru_cache(maxsize=1)
def default_world_settings() -> WorldSettings:
    return load_world_settings()
