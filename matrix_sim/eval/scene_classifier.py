"""A tiny scene classifier for the prompt-switch figure: nearest centroid of colour histograms.

Each frame becomes a joint RGB histogram (4 x 4 x 4 bins, normalised to sum to 1) of a 4x-downsampled copy;
a scene's centroid is the mean histogram of real source-world frames of it; a frame belongs to the scene
whose centroid is nearest in L1 distance. Biome, time of day and weather each shift the palette strongly
(sand vs snow vs grass, day vs night sky, fog), which is what a prompt switch has to change first; the
classifier's accuracy on real frames it was not fitted on is reported beside the figure.
"""
from __future__ import annotations

import numpy as np

BINS = 4


def colour_histograms(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, BINS**3) float, each row summing to 1."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    small = images[:, ::4, ::4].astype(np.int64) * BINS // 256             # (N, h, w, 3) bin per channel
    codes = (small[..., 0] * BINS + small[..., 1]) * BINS + small[..., 2]
    codes = codes.reshape(len(images), -1)
    rows = np.stack([np.bincount(c, minlength=BINS**3) for c in codes]).astype(np.float64)
    return rows / rows.sum(1, keepdims=True)


class SceneClassifier:
    """Nearest centroid over colour histograms; the classes are whatever labels it was fitted with."""

    def __init__(self, centroids: dict[str, np.ndarray]):
        if not centroids:
            raise ValueError("a scene classifier needs at least one scene")
        self.names = list(centroids)
        self.centroids = np.stack([centroids[n] for n in self.names])

    @classmethod
    def fit(cls, frames_by_scene: dict[str, np.ndarray]) -> "SceneClassifier":
        return cls({name: colour_histograms(frames).mean(0) for name, frames in frames_by_scene.items()})

    def distances(self, images: np.ndarray) -> np.ndarray:
        """(N, classes) L1 distances to each centroid."""
        h = colour_histograms(images)
        return np.abs(h[:, None, :] - self.centroids[None]).sum(-1)

    def classify(self, images: np.ndarray, among: list[str] | None = None) -> list[str]:
        """The nearest scene of each frame, optionally only among some of the fitted scenes."""
        d = self.distances(images)
        names = self.names
        if among is not None:
            keep = [self.names.index(n) for n in among]
            d, names = d[:, keep], [self.names[i] for i in keep]
        return [names[i] for i in d.argmin(1)]

    def accuracy(self, frames_by_scene: dict[str, np.ndarray]) -> float:
        right = total = 0
        for name, frames in frames_by_scene.items():
            got = self.classify(frames)
            right += sum(g == name for g in got)
            total += len(got)
        return right / max(total, 1)
