"""`python -m matrix_sim <command>`: recording, benchmarks and the scene list.

Bad input ends in a one-line `error: ...` and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")   # stdout carries the commands' JSON

from matrix_sim.config import CHECKPOINT_DIR, DEFAULT_VAE_DIR, ConfigError
from matrix_sim.runtime import RUNTIMES


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _cmd_record(args) -> None:
    from matrix_sim.data.record import record

    out = record(args.out, args.episodes, args.frames, args.seed, args.width, args.height, args.prompt,
                 progress=not args.quiet)
    logging.getLogger("matrix_sim").info("recorded %d episodes of %d frames to %s", args.episodes, args.frames, out)


def _cmd_bench(args) -> None:
    from matrix_sim.stream.schedule import parse_overrides

    if args.what == "world":
        from matrix_sim.eval.bench_world import bench_world

        result = bench_world(args.runs, args.frames, args.width, args.height, progress=not args.quiet)
    elif args.what == "runtime":
        from matrix_sim.eval.bench_runtime import bench_runtime

        result = bench_runtime(args.config, args.checkpoint, calls=args.calls, threads=args.threads,
                               progress=not args.quiet, stream_overrides=parse_overrides(args.stream))
    elif args.what == "levers":
        from matrix_sim.eval.bench_levers import bench_levers

        result = bench_levers(args.config, args.checkpoint, calls=args.calls, progress=not args.quiet,
                              compile_dit=args.compile, stream_overrides=parse_overrides(args.stream))
    else:
        from matrix_sim.eval.bench_play import bench_play

        result = bench_play(seconds=args.seconds, config=args.config, checkpoint=args.checkpoint,
                            progress=not args.quiet, video=args.video, threads=args.threads, upscaler=args.upscaler,
                            stream_overrides=parse_overrides(args.stream), runtime=args.runtime)
    _print_json(result, args.json)


def _cmd_train_vae(args) -> None:
    from matrix_sim.train.vae import train_vae

    print(train_vae(args.config, steps=args.steps, device=args.device, progress=not args.quiet))


def _cmd_train(args) -> None:
    from matrix_sim.train.world_model import train

    summary = train(args.config, steps=args.steps, device=args.device, progress=not args.quiet)
    print(summary.run_dir)


def _cmd_interpolate(args) -> None:
    from matrix_sim.train.interpolate import interpolate_dits

    print(interpolate_dits(args.start, args.end, args.weight, args.out))


def _cmd_encode(args) -> None:
    from matrix_sim.data.encode import encode_dataset

    print(encode_dataset(args.data, args.out, args.checkpoint, progress=not args.quiet))


def _cmd_eval_vae(args) -> None:
    from matrix_sim.eval.vae_eval import eval_vae

    _print_json(eval_vae(args.checkpoint, args.frames_per_scene, args.sheet, progress=not args.quiet), args.json)


def _cmd_eval(args) -> None:
    from matrix_sim.client.worlds import find_checkpoint
    from matrix_sim.eval.world_model_eval import eval_world_model
    from matrix_sim.stream.schedule import parse_overrides

    checkpoint = args.checkpoint or find_checkpoint()
    if checkpoint is None:
        raise ValueError("no world-model checkpoint in checkpoints/ (train one, or pass --checkpoint DIR)")
    result = eval_world_model(checkpoint, probe=args.probe, drift_frames=args.drift_frames,
                              drift_prompt=args.drift_prompt, starts_per_scene=args.starts_per_scene,
                              seed=args.seed, device=args.device, progress=not args.quiet, sheet=args.sheet,
                              stream_overrides=parse_overrides(args.stream), drift_sheet=args.drift_sheet,
                              still_frames=args.still_frames, still_sheet=args.still_sheet)
    _print_json(result, args.json)


def _cmd_train_probe(args) -> None:
    from matrix_sim.eval.probe import DEFAULT_LATENT_PROBE_DIR, DEFAULT_PROBE_DIR, is_latent_folder, train_probe

    out = args.out or (DEFAULT_LATENT_PROBE_DIR if is_latent_folder(args.data) else DEFAULT_PROBE_DIR)
    _print_json(train_probe(args.data, out, steps=args.steps, batch_size=args.batch_size,
                            time_limit_s=args.time_limit, progress=not args.quiet), one_line=False)


def _print_json(result: dict, one_line: bool) -> None:
    print(json.dumps(result) if one_line else json.dumps(result, indent=1))


def _cmd_sheet(args) -> None:
    from matrix_sim.eval.sheets import video_sheet, world_sheet

    if args.video:
        print(video_sheet(args.video, args.out or Path(args.video).with_suffix(".png"), every_s=args.every))
    else:
        print(world_sheet(args.out or "docs/source_world.png", seed=args.seed))


def _cmd_scenes(args) -> None:
    from matrix_sim.world.scenes import scene_catalog

    for prompt in scene_catalog().prompts:
        print(prompt)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (`error: ...`), as every other bad input is."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _stream_option(parser: argparse.ArgumentParser, applies_to: str = "") -> None:
    """--stream KEY=VALUE, read by stream.schedule.parse_overrides: the commands that run a trained stream."""
    parser.add_argument("--stream", action="append", default=[], metavar="KEY=VALUE", help=f"{applies_to}run the "
                        "stream with this setting instead of the model's (repeatable), e.g. levels=2 or "
                        "action_guidance=3")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m matrix_sim", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    rec = sub.add_parser("record", help="drive the source world with the exploration policy and write shards")
    rec.add_argument("--episodes", type=positive_int, required=True)
    rec.add_argument("--frames", type=positive_int, required=True, help="frames per episode")
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--out", required=True, help="output directory (resumed if it holds the same recording)")
    rec.add_argument("--width", type=positive_int, default=256)
    rec.add_argument("--height", type=positive_int, default=144)
    rec.add_argument("--prompt", default=None, help="record only this scene preset (default: every scene)")
    rec.set_defaults(func=_cmd_record)

    bench = sub.add_parser("bench", help="benchmarks that print one JSON object")
    bench.add_argument("what", choices=["world", "play", "levers", "runtime"], help="world: source-world recording "
                       "speed; runtime: the DiT's stream call and the decoder on torch, ONNX Runtime and OpenVINO; "
                       "play: the whole game loop on the world model (fps, latency, stages, utilisation, baseline); "
                       "levers: the DiT's stream levers alone (context cache, block size, threads, int8)")
    bench.add_argument("--json", action="store_true", help="one line of JSON")
    bench.add_argument("--runs", type=positive_int, default=6, help="world: runs")
    bench.add_argument("--frames", type=positive_int, default=300, help="world: frames per run")
    bench.add_argument("--width", type=positive_int, default=256, help="world: render width")
    bench.add_argument("--height", type=positive_int, default=144, help="world: render height")
    bench.add_argument("--seconds", type=float, default=20.0, help="play: seconds of the main run")
    bench.add_argument("--config", default="configs/tiny-cpu.yaml", help="play, levers: world-model config")
    bench.add_argument("--checkpoint", default=None, help="play, levers: a trained world-model folder (default: "
                       "random weights of the config's shape)")
    bench.add_argument("--calls", type=positive_int, default=30, help="levers: timed sampler calls per variant")
    bench.add_argument("--compile", action="store_true", help="levers: also time the DiT under torch.compile "
                       "(compiles first: tens of seconds, needs a C++ compiler)")
    bench.add_argument("--video", default=None, help="play: keep the main run's mp4 here")
    bench.add_argument("--threads", type=positive_int, default=None, help="play: torch threads (default: as the game "
                       "picks, every core but one on a CPU; one side run uses torch's own count)")
    _stream_option(bench, "play, levers: ")
    bench.add_argument("--upscaler", default="auto", help="play: display upscaler (auto: as the game picks)")
    bench.add_argument("--runtime", choices=RUNTIMES, default=None, help="play: what runs the DiT and the decoder, "
                       "as run_sim.py --runtime (default: $MATRIX_SIM_RUNTIME, else auto)")
    bench.set_defaults(func=_cmd_bench)

    tv = sub.add_parser("train-vae", help="train the frame autoencoder on recorded shards (torchrun for DDP)")
    tv.add_argument("--config", default="configs/vae-tiny.yaml")
    tv.add_argument("--steps", type=positive_int, default=None, help="stop at this step instead of the config's")
    tv.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best present)")
    tv.set_defaults(func=_cmd_train_vae)

    tw = sub.add_parser("train", help="train the world model (DiT) on latent shards (torchrun for DDP)")
    tw.add_argument("--config", default="configs/tiny-cpu.yaml")
    tw.add_argument("--steps", type=positive_int, default=None, help="stop at this step instead of the config's")
    tw.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best present)")
    tw.set_defaults(func=_cmd_train)

    ip = sub.add_parser("interpolate", help="write the DiT (1 - w) * START + w * END (two DiT folders of one "
                        "architecture) to OUT")
    ip.add_argument("--start", required=True)
    ip.add_argument("--end", required=True)
    ip.add_argument("--weight", type=float, required=True, help="w: 0 is START, 1 is END")
    ip.add_argument("--out", required=True)
    ip.set_defaults(func=_cmd_interpolate)

    enc = sub.add_parser("encode", help="turn recorded shards into latent shards for world-model training")
    enc.add_argument("--data", required=True, help="a directory written by `record`")
    enc.add_argument("--out", default=None, help="default: DATA/latents")
    enc.add_argument("--checkpoint", default=str(DEFAULT_VAE_DIR))
    enc.set_defaults(func=_cmd_encode)

    ev = sub.add_parser("eval-vae", help="held-out reconstruction PSNR and codec speed as one JSON object")
    ev.add_argument("--json", action="store_true", help="one line of JSON")
    ev.add_argument("--checkpoint", default=str(DEFAULT_VAE_DIR))
    ev.add_argument("--frames-per-scene", type=positive_int, default=4)
    ev.add_argument("--sheet", default=None, help="also write an original | reconstruction sheet per biome here")
    ev.set_defaults(func=_cmd_eval_vae)

    ew = sub.add_parser("eval", help="world model vs the source world: PSNR by horizon, action accuracy, "
                        "drift, prompt switch (one JSON object)")
    ew.add_argument("--json", action="store_true", help="one line of JSON")
    ew.add_argument("--checkpoint", default=None, help="world-model folder (default: newest in checkpoints/)")
    ew.add_argument("--probe", default=str(CHECKPOINT_DIR / "probe"))
    ew.add_argument("--drift-frames", type=int, default=10_000, help="length of the drift run (0 skips it)")
    ew.add_argument("--drift-prompt", default="drive grassland by day")
    ew.add_argument("--starts-per-scene", type=positive_int, default=2)
    ew.add_argument("--seed", type=int, default=0)
    ew.add_argument("--sheet", default=None, help="also write true | generated frames at each horizon (PNG) here")
    ew.add_argument("--drift-sheet", default=None, help="also write the drift run's frame of each minute, real "
                    "above generated (PNG), here")
    ew.add_argument("--still-frames", type=int, default=320, help="frames the still-scene run (a stopped player) "
                    "goes on after the stop (0 skips it)")
    ew.add_argument("--still-sheet", default=None, help="also write the still-scene run's frames, a row per scene "
                    "and held action (PNG), here")
    ew.add_argument("--device", default=None)
    _stream_option(ew)
    ew.set_defaults(func=_cmd_eval)

    tp = sub.add_parser("train-probe", help="train the inverse-dynamics probe on recorded frame pairs (eval's "
                        "judge), or on encoded latents (the world model's action critic in training)")
    tp.add_argument("--data", default="data/world_a", help="recorded frames, or a latent folder (encode's output: "
                    "trains a latent probe)")
    tp.add_argument("--out", default=None, help="default: checkpoints/probe for frames, checkpoints/latent-probe "
                    "for latents")
    tp.add_argument("--steps", type=positive_int, default=1500)
    tp.add_argument("--batch-size", type=positive_int, default=64)
    tp.add_argument("--time-limit", type=float, default=None, help="seconds; stops early")
    tp.set_defaults(func=_cmd_train_probe)

    sheet = sub.add_parser("sheet", help="write a contact sheet of the source world (every biome, mode, time) "
                                         "or of an mp4 (--video)")
    sheet.add_argument("--out", default=None, help="default: docs/source_world.png, or the video's name .png")
    sheet.add_argument("--seed", type=int, default=1)
    sheet.add_argument("--video", default=None, help="an mp4: one frame every --every seconds")
    sheet.add_argument("--every", type=float, default=2.5, help="seconds between frames of --video")
    sheet.set_defaults(func=_cmd_sheet)

    scenes = sub.add_parser("scenes", help="list the scene preset prompts")
    scenes.set_defaults(func=_cmd_scenes)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, ConfigError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
