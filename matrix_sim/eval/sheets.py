"""Contact sheets: labelled grids of frames for the docs (source world, reconstructions, generations)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from matrix_sim.actions import Action

LABEL_HEIGHT = 14
# every biome once, both modes, every time of day: what docs/source_world.png shows
WORLD_SHEET_PROMPTS = (
    "drive desert by day", "walk desert at sunset", "drive grassland at sunset", "walk grassland by day in rain",
    "drive forest by day", "walk forest at night", "drive snowfield at night in snow", "walk snowfield by day",
    "drive coast at sunset", "walk coast by day in fog", "drive city at night", "walk city by day",
)


def grid(images: list[np.ndarray], labels: list[str], cols: int) -> Image.Image:
    """Tile equally sized HxWx3 images in rows of `cols`, each with a caption strip above it."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (cols * w, rows * (h + LABEL_HEIGHT)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for i, (image, label) in enumerate(zip(images, labels)):
        x, y = (i % cols) * w, (i // cols) * (h + LABEL_HEIGHT)
        draw.text((x + 3, y + 1), label, fill=(235, 235, 235))
        sheet.paste(Image.fromarray(image), (x, y + LABEL_HEIGHT))
    return sheet


def save_grid(images: list[np.ndarray], labels: list[str], cols: int, out: str | Path) -> Path:
    """grid() written as a PNG at `out` (its folder made if need be)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(images, labels, cols).save(out)
    return out


def world_sheet(out: str | Path, seed: int = 1, warmup: int = 24, width: int = 256, height: int = 144) -> Path:
    """Twelve source-world frames, each after a short drive or walk so the scene is in motion."""
    from matrix_sim.world.engine import SourceWorld

    world = SourceWorld(width, height)
    images = []
    try:
        for prompt in WORLD_SHEET_PROMPTS:
            frame = world.reset(prompt, seed)
            for _ in range(warmup):
                frame = world.step(Action(forward=1.0, turn=0.15))
            images.append(frame.image)
    finally:
        world.close()
    return save_grid(images, list(WORLD_SHEET_PROMPTS), 4, out)


def video_sheet(video: str | Path, out: str | Path, every_s: float = 2.5, cols: int = 4,
                width: int = 320) -> Path:
    """A frame of an mp4 every `every_s` seconds, scaled to `width`, captioned with its time: how a recorded
    or generated video looks at a glance (the model card shows the world-model demo this way)."""
    import av

    images, labels = [], []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate)
        step = max(1, round(every_s * rate))
        for index, frame in enumerate(container.decode(stream)):
            if index % step == 0:
                height = round(width * frame.height / frame.width)
                images.append(frame.to_ndarray(format="rgb24", width=width, height=height))
                labels.append(f"t = {index / rate:.1f} s")
    if not images:
        raise ValueError(f"{video}: no video frames")
    return save_grid(images, labels, cols, out)


def rollout_sheet(rollouts, out: str | Path, horizons=(1, 4, 8, 16)) -> Path:
    """Per eval.rollout.Rollout one row: the last real context frame, then true | generated at each horizon
    (eval's PSNR setting: the model primed with real frames, conditioned on the true actions)."""
    from matrix_sim.eval.metrics import psnr

    images, labels = [], []
    for rollout in rollouts:
        images.append(rollout.last_context)
        labels.append(rollout.prompt)
        for h in horizons:
            true, made = rollout.truth[h - 1], rollout.generated[h - 1]
            images += [true, made]
            labels += [f"true t+{h}", f"generated t+{h} ({psnr(true, made):.1f} dB)"]
    return save_grid(images, labels, 1 + 2 * len(horizons), out)


def write_pairs_sheet(out: str | Path, pairs: list[tuple[np.ndarray, np.ndarray, str]]) -> Path:
    """Rows of (original | reconstruction) with the PSNR of each pair in its caption."""
    from matrix_sim.eval.metrics import psnr

    images, labels = [], []
    for original, rebuilt, name in pairs:
        images += [original, rebuilt]
        labels += [f"{name}: original", f"reconstruction {psnr(original, rebuilt):.1f} dB"]
    return save_grid(images, labels, 2, out)


def drift_sheet(real: list[np.ndarray], generated: list[np.ndarray], times_s: list[float], edge_density,
                out: str | Path) -> Path:
    """A long run at a glance (eval.drift): real footage above the generated run, a column per time."""
    labels = [f"real, t = {t:.0f} s" for t in times_s]
    labels += [f"generated, t = {t:.0f} s (edges {e:.3f})" for t, e in zip(times_s, edge_density)]
    return save_grid([*real, *generated], labels, len(times_s), out)
