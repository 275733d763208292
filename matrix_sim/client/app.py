"""`python run_sim.py` or `matrix-sim play`: parse the arguments, then play in a window or render headless.

Bad input (unknown world, missing checkpoint, bad bindings, bad prompt) ends in one `error: ...` line.
SIGTERM and SIGHUP end the game like closing the window, so recordings are finished, not cut.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from matrix_sim.arguments import OneLineParser, positive_int
from matrix_sim.client.display import AUTO, UPSCALER_CHOICES
from matrix_sim.client.options import DEFAULT_PROMPT, Options
from matrix_sim.client.worlds import WORLD_KINDS, choose_kind
from matrix_sim.config import DEFAULT_CHECKPOINT, ConfigError
from matrix_sim.runtime import RUNTIMES

log = logging.getLogger("matrix_sim.client")


def build_parser(prog: str = "python run_sim.py") -> OneLineParser:
    p = OneLineParser(prog=prog, description="Play matrix-sim: drive or walk through a generated world.")
    p.add_argument("--world", choices=WORLD_KINDS, default="auto",
                   help="model (needs a checkpoint), engine (the procedural source world), auto (model if a "
                        "checkpoint is there, else engine, with a warning)")
    p.add_argument("--checkpoint", default=None, help=f"world-model checkpoint folder (default: {DEFAULT_CHECKPOINT}, "
                   "relative to the working directory)")
    p.add_argument("--prompt", default=None, help="scene to start in (`python -m matrix_sim scenes`; default: the "
                   f"checkpoint's own start scene, e.g. 'doom e1m1' for a model of Doom, else {DEFAULT_PROMPT!r})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--upscaler", choices=UPSCALER_CHOICES, default=AUTO,
                   help="display upscaling shader (auto: bilinear on a software rasteriser, else lanczos)")
    p.add_argument("--controls", type=Path, default=Options.controls, help="bindings YAML (default: the shipped "
                   "matrix_sim/resources/controls.yaml; copy it to change them)")
    p.add_argument("--record", type=Path, default=None, help="record to this mp4 from the start")
    p.add_argument("--record-hud", action="store_true", help="draw the HUD into recordings")
    p.add_argument("--replay", type=Path, default=None, help="play a recording's sidecar SESSION.json again")
    p.add_argument("--fullscreen", action="store_true")
    p.add_argument("--headless", action="store_true", help="no window: render --frames frames to --record")
    p.add_argument("--frames", type=positive_int, default=None, help="headless: frames to render")
    p.add_argument("--actions", type=Path, default=None, help="headless: YAML/JSON action script")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads for the world model (default: every core but one on a CPU, for the display)")
    p.add_argument("--runtime", choices=RUNTIMES, default=None,
                   help="what runs the world model's DiT and frame decoder: torch, onnx (ONNX Runtime), openvino, or "
                        "auto (the fastest that agrees with torch; torch when no engine is installed; the default, "
                        "or $MATRIX_SIM_RUNTIME)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None, prog: str = "python run_sim.py") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    known = {f.name for f in fields(Options)}
    options = Options(**{k: v for k, v in vars(args).items() if k in known}, progress=not args.quiet)
    if not args.headless and (args.frames or args.actions):
        return _fail("--frames and --actions are for --headless runs")
    if args.headless and args.controls != Options.controls:
        return _fail("--controls is for the window; a --headless run follows --actions")
    try:
        if options.replay:
            from matrix_sim.client.session import load_replay

            replay = load_replay(options.replay)
            options.world, options.checkpoint, options.seed = replay.world, replay.checkpoint, replay.seed
            options.prompt = replay.ops[0][1]      # its first reset: which world an engine replay opens ("doom map01")
            log.info("replaying %s: %s world, seed %d, %d frames", options.replay, replay.world, replay.seed,
                     replay.frames)
        kind, checkpoint = choose_kind(options.world, options.checkpoint)
        options.world, options.checkpoint = kind, str(checkpoint) if checkpoint else None
        if options.prompt is None:
            from matrix_sim.stream.bundle import read_info      # here: the package imports torch

            options.prompt = (checkpoint and read_info(checkpoint).start_prompt) or DEFAULT_PROMPT
        if args.headless:
            from matrix_sim.client.headless import run_headless

            run_headless(options)
        else:
            from matrix_sim.client.game import Game

            Game(options).run()
    except (ConfigError, ValueError, RuntimeError) as exc:
        return _fail(str(exc))
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
