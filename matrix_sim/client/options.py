"""What a run of the client was asked to do (from run_sim.py's arguments or a test)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from matrix_sim.client.display import AUTO
from matrix_sim.client.bindings import CONTROLS_PATH

DEFAULT_PROMPT = "drive desert at sunset"
WINDOW_SIZE = (1280, 720)


@dataclass
class Options:
    world: str = "auto"                    # "auto" (model if a checkpoint exists, else engine), "engine", "model"
    checkpoint: Optional[str] = None
    prompt: str = DEFAULT_PROMPT
    seed: int = 0
    upscaler: str = AUTO
    controls: Path = CONTROLS_PATH
    record: Optional[Path] = None          # start recording here at once (headless: the output)
    record_hud: bool = False               # draw the HUD into recordings
    replay: Optional[Path] = None          # a recording's sidecar JSON to play again
    frames: Optional[int] = None           # headless: frames to render
    actions: Optional[Path] = None         # headless: action script
    fullscreen: bool = False
    window_size: tuple[int, int] = WINDOW_SIZE
    recordings_dir: Path = Path("recordings")
    screenshots_dir: Path = Path("screenshots")
    progress: bool = True                  # tqdm bars
    threads: Optional[int] = None          # torch threads for the world model (None: device.game_threads)
    runtime: Optional[str] = None          # what runs the model: torch, onnx, openvino, auto (None: $MATRIX_SIM_RUNTIME
                                           # or auto; matrix_sim/runtime)
