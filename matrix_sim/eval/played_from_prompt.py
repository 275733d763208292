"""Played from the prompt: the generated world and the source world started from a scene's prompt alone and
driven by the same scripted keys.

Every other figure primes the world model with real frames. A player who picks a scene gets no such
context: WorldModel.reset(prompt, seed) starts the stream from noise and the prompt. Here both worlds start
that way (the source world from the preset, the world model from the prompt without priming) and take the
same scripted actions through the World protocol (reset / step), so the stream's latency counts as it does
in play. The script per mode (SCRIPTS) goes straight, steers left, steers right, stops (brake), idles,
backs up and goes on. Per window (2 s) of frames, from the per-frame statistics of each world:

  sharpness ratio   edge density (drift.frame_stats) of the generated frames / that of the source world's frames
  pan               horizontal image shift between consecutive frames in pixels (pan_shift: phase correlation
                    of the frames' luma (Hann-windowed), refined between pixels; + = the picture moves right)
  frame change      mean absolute difference of consecutive frames in grey levels (0-255, over RGB)
  scene verdict     whether most of the window's frames are classified as the intended scene by the
                    nearest-centroid colour classifier (scene_classifier.py) fitted on the source world's
                    frames of every scene played and of PLAYED_PROMPTS (so there are always other scenes to
                    mistake it for)

Summaries: the lowest sharpness ratio of any window; the correlation of the generated world's per-frame pan
with the source world's over the frames the steering actions produced (pooled over the scenes) and its gain,
the share of the source's pan the generated world makes (the correlation is blind to scale); the mean
frame change over the frames the stop and idle actions produced; the share of windows recognised as their
scene. The same figures for a reference, the source world at another seed under the same actions, say what
a world that plays right scores (its own terrain differs, so its pan and sharpness follow the source world's
only as far as a world of that scene must).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional, Sequence

import numpy as np

from matrix_sim.actions import Action
from matrix_sim.eval.drift import EDGE, frame_stats
from matrix_sim.eval.scene_classifier import SceneClassifier, colour_histograms
from matrix_sim.world.scenes import parse_prompt

PLAYED_PROMPTS = ("drive grassland by day", "drive city at night", "walk forest by day", "walk desert at night")
DEFAULT_SECONDS = 24.0         # the 15-s script and 9 s of going on
WINDOW_S = 2.0
SOURCE_SEED = 2**31 + 700          # held-out seeds (matrix_sim.eval.heldout)
REFERENCE_SEED_OFFSET = 1000       # the reference: the source world at SOURCE_SEED + i + this
STEERING = ("left", "right")
STOPPED = ("stop", "idle")
MAX_PAN = 32                       # pixels searched each way between consecutive frames
EDGE_EVERY = 4                     # edge density on every 4th frame (8 of a 2-s window at 16 fps)
EDGE_EPS = 1e-4                    # keeps the sharpness ratio finite where a window has no edges at all
LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# (segment name, seconds, action); after the last segment the final action holds to the end of the run
SCRIPTS: dict[str, tuple[tuple[str, float, Action], ...]] = {
    "drive": (("straight", 4.0, Action(forward=1.0)),
              ("left", 2.0, Action(forward=1.0, turn=-1.0)),
              ("right", 2.0, Action(forward=1.0, turn=1.0)),
              ("stop", 3.0, Action(brake=1.0)),
              ("idle", 2.0, Action()),
              ("reverse", 2.0, Action(forward=-1.0)),
              ("on", 0.0, Action(forward=1.0))),
    "walk": (("straight", 4.0, Action(forward=1.0)),
             ("left", 2.0, Action(turn=-1.0)),
             ("right", 2.0, Action(turn=1.0)),
             ("stop", 3.0, Action(brake=1.0)),
             ("idle", 2.0, Action()),
             ("back", 2.0, Action(forward=-1.0)),
             ("on", 0.0, Action(forward=1.0))),
}
WHAT = ("both worlds started from the scene's prompt alone (the world model without real context) and played "
        "through reset/step by the same scripted actions (straight, steer left, steer right, brake, idle, "
        "reverse, on); per 2-s window: edge-density ratio generated / source, pan (px/frame) and frame change "
        "(grey levels/frame) of each world, and whether the scene classifier recognises the window; summaries: "
        "lowest sharpness ratio, correlation and gain (least-squares slope) of the generated pan on the "
        "source's while steering, frame change while stopped (stop and idle), recognition rate; `reference` "
        "is the source world at another seed under the same actions")


# ---- per-frame measures ---------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _hann(height: int, width: int) -> np.ndarray:
    return np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)


def luma_spectrum(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> the 2-D real FFT of its luma, less its mean, tapered to 0 at the borders by a Hann
    window (so the picture's edges, which do not move with it, make no peak at shift 0): what pan_between
    compares."""
    luma = image.astype(np.float32) @ LUMA
    return np.fft.rfft2((luma - luma.mean()) * _hann(*luma.shape))


def pan_between(before: np.ndarray, after: np.ndarray, width: int, max_shift: int = MAX_PAN) -> float:
    """Horizontal shift (pixels, + = the picture moves right) from the frame whose luma_spectrum is `before`
    to the one whose spectrum is `after`, by phase correlation: the peak of the normalised cross-power
    spectrum's inverse among shifts of at most `max_shift` columns (any rows), refined between columns by a
    parabola through the peak and its neighbours."""
    cross = after * np.conj(before)
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-6), s=(before.shape[0], width))
    columns = np.r_[0:max_shift + 1, width - max_shift:width] if 2 * max_shift + 1 < width else np.arange(width)
    row, k = np.unravel_index(np.argmax(surface[:, columns]), (surface.shape[0], len(columns)))
    column = int(columns[k])
    left, peak, right = surface[row, column - 1], surface[row, column], surface[row, (column + 1) % width]
    curve = left - 2 * peak + right
    offset = 0.5 * (left - right) / curve if curve < 0 else 0.0
    return float((column if column <= width // 2 else column - width) + offset)


def pan_shift(before: np.ndarray, after: np.ndarray, max_shift: int = MAX_PAN) -> float:
    """Horizontal image shift from one (H, W, 3) uint8 frame to the next, in pixels (+ = the picture moves
    right, as when the camera turns left)."""
    return pan_between(luma_spectrum(before), luma_spectrum(after), before.shape[1], max_shift)


def edge_densities(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N,) edge density of each frame (drift.frame_stats)."""
    return np.array([frame_stats(f)[EDGE] for f in frames], dtype=np.float64)


def edge_ratio(generated_edges, source_edges) -> float:
    """Mean edge density of the generated frames over that of the source frames (EDGE_EPS added to both)."""
    return float((np.mean(generated_edges) + EDGE_EPS) / (np.mean(source_edges) + EDGE_EPS))


def sharpness_ratio(generated: np.ndarray, source: np.ndarray) -> float:
    """Edge density of the generated frames (N, H, W, 3) over that of the source frames: 1 for the same
    frames, below 1 for blurred ones."""
    return edge_ratio(edge_densities(generated), edge_densities(source))


def change_between(before: np.ndarray, after: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frames in grey levels."""
    return float(np.mean(np.abs(after.astype(np.int16) - before.astype(np.int16))))


def frame_change(frames: np.ndarray) -> float:
    """Mean absolute change per frame (grey levels) over consecutive frames of (N >= 2, H, W, 3) uint8."""
    if len(frames) < 2:
        raise ValueError(f"frame change needs at least 2 frames, got {len(frames)}")
    return float(np.mean([change_between(a, b) for a, b in zip(frames[:-1], frames[1:])]))


def gain(generated: Sequence[float], source: Sequence[float]) -> Optional[float]:
    """Least-squares slope through the origin of the generated pan on the source's: the share of the source
    world's turn that the generated world makes (1 turns alike, 0 does not turn). The correlation alone is
    blind to scale, so a world that barely turns, but the right way, scores high on it; None without pan."""
    g, s = np.asarray(generated, np.float64), np.asarray(source, np.float64)
    power = float(np.dot(s, s))
    return float(np.dot(g, s) / power) if len(s) and power > 1e-9 else None


def correlation(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """Pearson correlation; None where either series is constant (or there are fewer than 3 values)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return None
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class Track:
    """Per-frame statistics of one played run, gathered frame by frame. Edge density (drift.frame_stats, the costly
    one) is measured on every `edge_every`-th frame only; the other entries are None. Frames are not
    kept, but for a sheet: with `keep_every`, the middle frame of every `keep_every` frames."""

    edges: list = field(default_factory=list)
    pans: list = field(default_factory=list)           # pans[t]: frame t - 1 -> t (0 for frame 0)
    changes: list = field(default_factory=list)        # likewise
    histograms: list = field(default_factory=list)
    edge_every: int = EDGE_EVERY
    keep_every: int = 0
    kept: list = field(default_factory=list)
    _last: Optional[np.ndarray] = None
    _last_spectrum: Optional[np.ndarray] = None

    def add(self, image: np.ndarray) -> None:
        spectrum = luma_spectrum(image)
        first = self._last is None
        self.edges.append(float(frame_stats(image)[EDGE]) if len(self.edges) % self.edge_every == 0 else None)
        self.pans.append(0.0 if first else pan_between(self._last_spectrum, spectrum, image.shape[1]))
        self.changes.append(0.0 if first else change_between(self._last, image))
        self.histograms.append(colour_histograms(image)[0])
        if self.keep_every and (len(self.histograms) - 1) % self.keep_every == self.keep_every // 2:
            self.kept.append(image)
        self._last, self._last_spectrum = image, spectrum


# ---- the script and the runs ----------------------------------------------------------------------------
def script_actions(mode: str, frames: int, frame_rate: float,
                   scripts: dict = SCRIPTS) -> tuple[list[Action], list[str]]:
    """The `frames - 1` actions that follow frame 0 (action t makes frame t + 1) and the segment of each."""
    actions, names = [], []
    for name, seconds, action in scripts[mode]:
        count = int(round(seconds * frame_rate))
        actions += [action] * count
        names += [name] * count
    last_name, _, last_action = scripts[mode][-1]
    missing = max(0, frames - 1 - len(actions))
    actions, names = actions + [last_action] * missing, names + [last_name] * missing
    return actions[:frames - 1], names[:frames - 1]


def play(world, prompt: str, seed: int, actions: Sequence[Action], edge_every: int = EDGE_EVERY,
         keep_every: int = 0) -> Track:
    """reset(prompt, seed), then step through `actions`: per-frame statistics of the len(actions) + 1 frames."""
    track = Track(edge_every=edge_every, keep_every=keep_every)
    track.add(world.reset(prompt, seed).image)
    for action in actions:
        track.add(world.step(action).image)
    return track


def _windows(frames: int, window: int) -> list[range]:
    """Consecutive windows of `window` frames; a last partial one counts if it holds at least half a window."""
    spans = [range(i, min(i + window, frames)) for i in range(0, frames, window)]
    if len(spans) > 1 and len(spans[-1]) < window / 2:
        spans = spans[:-1]
    return spans


def _segment_of_window(span: range, frame_segments: list[str]) -> str:
    names = [frame_segments[t] for t in span]
    return max(dict.fromkeys(names), key=names.count)       # the most frames; the earliest on a tie


def _recognised(histograms: np.ndarray, centroids: np.ndarray, intended: int) -> bool:
    nearest = np.abs(histograms[:, None, :] - centroids[None]).sum(-1).argmin(1)
    return bool(np.mean(nearest == intended) > 0.5)


def _r(value: Optional[float], digits: int = 4) -> Optional[float]:
    return None if value is None else round(float(value), digits)


def played_from_prompt(world, prompts: Sequence[str] = PLAYED_PROMPTS, seconds: float = DEFAULT_SECONDS,
                       seed: int = 0, window_s: float = WINDOW_S, scripts: dict = SCRIPTS,
                       source_seed: int = SOURCE_SEED, sheet: Optional[str | Path] = None,
                       named: Mapping[str, str] = MappingProxyType({})) -> dict:
    """Play `world` (a WorldModel, or any World) and the source world from each prompt under its mode's
    script for `seconds`; figures per window and summarised (see the module's docstring). sheet: also write
    the middle frame of every window, the source world above the generated one for each prompt (a PNG).
    named: the preset each free-text prompt names (a preset names itself): the source world plays that preset,
    the world `world` the free text, and a window is recognised when it looks like the named scene."""
    from matrix_sim.world.engine import SourceWorld

    rate = world.frame_rate
    frames = int(round(seconds * rate))
    window = max(1, int(round(window_s * rate)))
    if frames < 2:
        raise ValueError(f"a played run needs at least 2 frames, got {seconds} s at {rate} fps")
    edge_every = EDGE_EVERY if window % EDGE_EVERY == 0 else 1      # every window measured alike
    keep_every = window if sheet else 0                              # a window's middle frame, for the sheet
    height, width = world.frame_size
    source = SourceWorld(width, height)
    runs = []
    try:
        for i, prompt in enumerate(prompts):
            scene = named.get(prompt, prompt)
            actions, segments = script_actions(parse_prompt(scene).mode, frames, rate, scripts)
            runs.append({"prompt": prompt, "scene": scene,
                         "segments": ["start"] + segments,      # the segment that made frame t
                         "generated": play(world, prompt, seed + i, actions, edge_every, keep_every),
                         "source": play(source, scene, source_seed + i, actions, edge_every, keep_every),
                         "reference": play(source, scene, source_seed + i + REFERENCE_SEED_OFFSET, actions,
                                           edge_every)})
        classes = list(dict.fromkeys([*(run["scene"] for run in runs), *PLAYED_PROMPTS]))
        footage = {run["scene"]: np.array(run["source"].histograms) for run in runs}
        for j, prompt in enumerate(classes):
            if prompt not in footage:     # a contrast scene not played: the source world under its script
                actions, _ = script_actions(parse_prompt(prompt).mode, frames, rate, scripts)
                footage[prompt] = np.array(play(source, prompt, source_seed + len(prompts) + j, actions).histograms)
    finally:
        source.close()
    classifier = SceneClassifier({prompt: footage[prompt].mean(0) for prompt in classes})
    result = _figures(runs, classifier, frames, window, rate, window_s, list(prompts), scripts)
    if sheet:
        result["sheet"] = str(_sheet(runs, window, rate, sheet))
    return result


def _sheet(runs: list[dict], window: int, rate: float, out: str | Path) -> Path:
    """A row of window frames per world and prompt: the first captioned with the world and prompt, the rest
    with their time and script segment."""
    from matrix_sim.eval.sheets import save_grid

    images, labels = [], []
    for run in runs:
        for name in ("source", "generated"):
            for i, image in enumerate(run[name].kept):
                t = i * window + window // 2
                images.append(image)
                labels.append(f"{name}: {run['prompt']}" if i == 0 else f"{t / rate:.1f} s {run['segments'][t]}")
    return save_grid(images, labels, len(runs[0]["source"].kept), out)


def _figures(runs: list[dict], classifier: SceneClassifier, frames: int, window: int, rate: float,
             window_s: float, prompts: list[str], scripts: dict) -> dict:
    compared = ("generated", "reference")
    per_scene = []
    ratios = {name: [] for name in compared}
    recognised = {name: [] for name in compared}
    steering_pans = {name: [] for name in ("generated", "source", "reference")}
    stopped_changes = {name: [] for name in ("generated", "source", "reference")}
    for run in runs:
        intended = classifier.names.index(run["scene"])
        tracks = {name: run[name] for name in ("generated", "source", "reference")}
        segments = run["segments"]
        steering = [t for t in range(1, frames) if segments[t] in STEERING]
        stopped = [t for t in range(1, frames) if segments[t] in STOPPED]
        scene = {"prompt": run["prompt"], "windows": []}
        if run["scene"] != run["prompt"]:
            scene["named_scene"] = run["scene"]
        for span in _windows(frames, window):
            entry = {"start_s": round(span.start / rate, 3), "segment": _segment_of_window(span, segments)}
            moves = [t for t in span if t > 0]
            for name in compared:
                measured = [t for t in span if tracks["source"].edges[t] is not None]
                ratio = edge_ratio([tracks[name].edges[t] for t in measured],
                                   [tracks["source"].edges[t] for t in measured])
                ratios[name].append(ratio)
                seen = _recognised(np.array([tracks[name].histograms[t] for t in span]), classifier.centroids,
                                   intended)
                recognised[name].append(seen)
                entry.setdefault("sharpness_ratio", {})[name] = _r(ratio)
                entry.setdefault("recognised", {})[name] = seen
            for name, track in tracks.items():
                entry.setdefault("pan_px_per_frame", {})[name] = _r(np.mean([track.pans[t] for t in moves]), 2) \
                    if moves else None
                entry.setdefault("frame_change", {})[name] = _r(np.mean([track.changes[t] for t in moves]), 2) \
                    if moves else None
            scene["windows"].append(entry)
        for name, track in tracks.items():
            steering_pans[name].append([track.pans[t] for t in steering])
            stopped_changes[name].append([track.changes[t] for t in stopped])
        scene["pan_correlation"] = {name: _r(correlation(steering_pans[name][-1], steering_pans["source"][-1]))
                                    for name in compared}
        scene["pan_gain"] = {name: _r(gain(steering_pans[name][-1], steering_pans["source"][-1]))
                             for name in compared}
        scene["frame_change_stopped"] = {name: _r(np.mean(v[-1]), 2) if v[-1] else None
                                         for name, v in stopped_changes.items()}
        per_scene.append(scene)

    def pooled(values: list[list[float]]) -> list[float]:
        return [v for run in values for v in run]

    def summary(name: str) -> dict:
        changes = pooled(stopped_changes[name])
        return {"min_sharpness_ratio": _r(min(ratios[name])),
                "mean_sharpness_ratio": _r(np.mean(ratios[name])),
                "pan_correlation": _r(correlation(pooled(steering_pans[name]), pooled(steering_pans["source"]))),
                "pan_gain": _r(gain(pooled(steering_pans[name]), pooled(steering_pans["source"]))),
                "frame_change_stopped": _r(np.mean(changes), 2) if changes else None,
                "scene_recognition_rate": _r(np.mean(recognised[name]))}

    source_changes = pooled(stopped_changes["source"])
    return {"what": WHAT, "prompts": prompts, "seconds": round(frames / rate, 3), "frames": frames,
            "frame_rate": rate, "window_s": window_s, "windows_per_scene": len(per_scene[0]["windows"]),
            "script": {mode: [[name, s, {k: v for k, v in vars(a).items() if v}] for name, s, a in segments]
                       for mode, segments in scripts.items()},
            "generated": summary("generated"), "reference": summary("reference"),
            "source_frame_change_stopped": _r(np.mean(source_changes), 2) if source_changes else None,
            "steering_frames": len(pooled(steering_pans["source"])),
            "stopped_frames": len(source_changes),
            "classifier_scenes": classifier.names, "scenes": per_scene}
