"""`python -m matrix_sim <command>` (installed: `matrix-sim <command>`): play, data, training, evaluation, benchmarks.

Bad input ends in a one-line `error: ...` and exit status 2, never a traceback. `play` hands its arguments to
the game client (matrix_sim/client/app.py, also `python run_sim.py`).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")   # stdout carries the commands' JSON

from matrix_sim.arguments import OneLineParser, positive_float, positive_int, stream_option
from matrix_sim.config import CHECKPOINT_DIR, DEFAULT_CHECKPOINT, DEFAULT_VAE_DIR, ConfigError, writable_output
from matrix_sim.runtime import RUNTIMES

PLAY = "play"
DEFAULT_DATA = "data/world_a"          # prepare-data's recording: what the training configs read
SOURCE_WORLD_ONLY = ("probe", "drift_frames", "drift_prompt", "drift_sheet", "still_frames", "still_sheet",
                     "played_seconds", "played_sheet", "free_text_seconds")   # eval options that --data has no use for


def _cmd_record(args) -> None:
    from matrix_sim.data.record import record

    out = record(args.out, args.episodes, args.frames, args.seed, args.width, args.height, args.prompt,
                 progress=not args.quiet, env=args.env, workers=args.workers)
    logging.getLogger("matrix_sim").info("recorded %d episodes of %d frames to %s", args.episodes, args.frames, out)


def _cmd_prepare_data(args) -> None:
    """record, then encode: the training data in one resumable command (each step keeps what it finished)."""
    from matrix_sim.data.encode import encode_dataset

    _cmd_record(args)
    print(encode_dataset(args.out, None, args.checkpoint, progress=not args.quiet))


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
                              stream_overrides=parse_overrides(args.stream))
    elif args.what == "train":
        from matrix_sim.eval.bench_train import DEFAULT_STEPS, bench_train

        result = bench_train(args.config, steps=args.steps or DEFAULT_STEPS, data=args.data, progress=not args.quiet)
    elif args.what == "soak":
        from matrix_sim.eval.bench_soak import bench_soak

        result = bench_soak(args.minutes, checkpoint=args.checkpoint or DEFAULT_CHECKPOINT,
                            window_s=args.window_s, progress=not args.quiet, video=args.video, threads=args.threads,
                            upscaler=args.upscaler)
    else:
        from matrix_sim.eval.bench_play import bench_play

        result = bench_play(seconds=args.seconds, config=args.config, checkpoint=args.checkpoint,
                            progress=not args.quiet, video=args.video, threads=args.threads, upscaler=args.upscaler,
                            stream_overrides=parse_overrides(args.stream), runtime=args.runtime)
    _print_json(result, args.json)


def _cmd_train_vae(args) -> None:
    from matrix_sim.train.vae import train_vae

    print(train_vae(args.config, steps=args.steps, device=args.device, progress=not args.quiet, stage=args.stage))


def _cmd_train(args) -> None:
    from matrix_sim.train.world_model import train

    summary = train(args.config, steps=args.steps, device=args.device, progress=not args.quiet,
                    run_dir=args.run_dir, batch_size=args.batch_size, minutes=args.minutes)
    print(summary.run_dir)


def _cmd_encode(args) -> None:
    from matrix_sim.data.encode import encode_dataset

    print(encode_dataset(args.data, args.out, args.checkpoint, progress=not args.quiet))


def _cmd_eval_vae(args) -> None:
    from matrix_sim.eval.vae_eval import eval_vae

    writable_output(args.sheet, "sheet")
    _print_json(eval_vae(args.checkpoint, args.frames_per_scene, args.sheet, progress=not args.quiet), args.json)


def _cmd_eval(args) -> None:
    from matrix_sim.checkpoints import require_checkpoint
    from matrix_sim.eval.world_model_eval import eval_world_model
    from matrix_sim.stream.schedule import parse_overrides

    if args.data is not None:
        given = ["--" + dest.replace("_", "-") for dest, default in args.source_world_defaults.items()
                 if getattr(args, dest) != default]
        if given:
            raise ConfigError(f"eval --data scores the footage's frames only; {', '.join(given)} need the source world")
    checkpoint = require_checkpoint(args.checkpoint, engine_hint=False)
    for flag in ("sheet", "drift_sheet", "still_sheet", "played_sheet"):
        writable_output(getattr(args, flag), flag.replace("_", " "))
    if args.data is not None:
        from matrix_sim.eval.footage_eval import eval_on_footage

        _print_json(eval_on_footage(checkpoint, args.data, starts_per_episode=args.starts_per_scene, seed=args.seed,
                                    device=args.device, progress=not args.quiet, sheet=args.sheet,
                                    stream_overrides=parse_overrides(args.stream)), args.json)
        return
    result = eval_world_model(checkpoint, probe=args.probe, drift_frames=args.drift_frames,
                              drift_prompt=args.drift_prompt, starts_per_scene=args.starts_per_scene,
                              seed=args.seed, device=args.device, progress=not args.quiet, sheet=args.sheet,
                              stream_overrides=parse_overrides(args.stream), drift_sheet=args.drift_sheet,
                              still_frames=args.still_frames, still_sheet=args.still_sheet,
                              played_seconds=args.played_seconds, played_sheet=args.played_sheet,
                              free_text_seconds=args.free_text_seconds)
    _print_json(result, args.json)


def _cmd_train_probe(args) -> None:
    from matrix_sim.train.probe import train_probe

    _print_json(train_probe(args.data, args.out, steps=args.steps, batch_size=args.batch_size,
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


def _prog() -> str:
    """How the user called this: `matrix-sim` (the installed script) or `python -m matrix_sim`."""
    return "matrix-sim" if Path(sys.argv[0]).name == "matrix-sim" else "python -m matrix_sim"


def _recording_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=positive_int, default=256)
    parser.add_argument("--height", type=positive_int, default=144)
    parser.add_argument("--workers", type=positive_int, default=1, help="processes recording the source world "
                        "side by side (the same bytes as one)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=_prog(), description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    play = sub.add_parser(PLAY, add_help=False, help="play the game: a window, or --headless frames to an mp4 "
                          "(`matrix-sim play --help` lists its options; the same as `python run_sim.py`)")
    play.set_defaults(func=None)

    rec = sub.add_parser("record", help="drive the source world with the exploration policy and write shards")
    rec.add_argument("--episodes", type=positive_int, required=True)
    rec.add_argument("--frames", type=positive_int, required=True, help="frames per episode")
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--out", required=True, help="output directory (resumed if it holds the same recording)")
    _recording_size(rec)
    rec.add_argument("--prompt", default=None, help="record only this scene preset (default: every scene), or "
                     "one level of an environment, e.g. \"doom map01\"")
    rec.add_argument("--env", default=None, help="record a registered Gymnasium environment instead of the source "
                     "world, e.g. doom (pip install 'matrix-sim[doom]'); its levels are cycled unless --prompt")
    rec.set_defaults(func=_cmd_record)

    prep = sub.add_parser("prepare-data", help=f"the training data in one command: record, then encode "
                          f"(defaults: the shipped model's data, {DEFAULT_DATA}); resumable")
    prep.add_argument("--episodes", type=positive_int, default=288)
    prep.add_argument("--frames", type=positive_int, default=256, help="frames per episode")
    prep.add_argument("--seed", type=int, default=1000)
    prep.add_argument("--out", default=DEFAULT_DATA, help="recording directory; latents go to OUT/latents")
    _recording_size(prep)
    prep.add_argument("--checkpoint", default=str(DEFAULT_VAE_DIR), help="the autoencoder that encodes")
    prep.set_defaults(func=_cmd_prepare_data, prompt=None, env=None)

    bench = sub.add_parser("bench", help="benchmarks that print one JSON object")
    bench.add_argument("what", choices=["world", "play", "levers", "train", "soak", "runtime"], help="world: "
                       "source-world recording speed; play: the whole game loop on the world model (fps, latency, "
                       "stages, utilisation, baseline); levers: the DiT's stream levers alone (context cache, block "
                       "size, levels, threads, guidance); runtime: the DiT's stream call and the decoder on torch, "
                       "ONNX Runtime and OpenVINO; train: the config's training step (clips/s, utilisation; batch, "
                       "autocast and thread levers); soak: the game loop, recording, for --minutes (fps and memory per "
                       "window, the mp4 checked)")
    bench.add_argument("--json", action="store_true", help="one line of JSON")
    bench.add_argument("--runs", type=positive_int, default=6, help="world: runs")
    bench.add_argument("--frames", type=positive_int, default=300, help="world: frames per run")
    bench.add_argument("--width", type=positive_int, default=256, help="world: render width")
    bench.add_argument("--height", type=positive_int, default=144, help="world: render height")
    bench.add_argument("--seconds", type=float, default=20.0, help="play: seconds of the main run")
    bench.add_argument("--config", default="configs/tiny-cpu.yaml", help="play, levers, runtime, train: world-model "
                       "config (play, levers, runtime: its shape, where no --checkpoint is given)")
    bench.add_argument("--checkpoint", default=None, help="play, levers, runtime, soak: a trained world-model "
                       "folder (default: random weights of the config's shape; soak: checkpoints/tiny-cpu)")
    bench.add_argument("--calls", type=positive_int, default=30, help="levers, runtime: timed calls per variant")
    bench.add_argument("--steps", type=positive_int, default=None, help="train: timed steps per variant (default 6)")
    bench.add_argument("--data", choices=["synthetic", "real"], default="synthetic", help="train: random latents of "
                       "the config's shape, or the config's latent shards")
    bench.add_argument("--minutes", type=float, default=10.0, help="soak: minutes of play (fractions too)")
    bench.add_argument("--window-s", type=float, default=60.0, help="soak: seconds per reported window")
    bench.add_argument("--video", default=None, help="play, soak: keep the (main run's) mp4 here")
    bench.add_argument("--threads", type=positive_int, default=None, help="play, soak, runtime: torch threads "
                       "(default: as the game picks, every core but one on a CPU; one side run of play uses "
                       "torch's own count)")
    stream_option(bench, "play, levers, runtime: ")
    bench.add_argument("--upscaler", default="auto", help="play, soak: display upscaler (auto: as the "
                       "game picks)")
    bench.add_argument("--runtime", choices=RUNTIMES, default=None, help="play: what runs the DiT and the decoder, "
                       "as run_sim.py --runtime (default: $MATRIX_SIM_RUNTIME, else auto)")
    bench.set_defaults(func=_cmd_bench)

    tv = sub.add_parser("train-vae", help="train the frame autoencoder on recorded shards (torchrun for DDP)")
    tv.add_argument("--config", default="configs/vae-tiny.yaml")
    tv.add_argument("--stage", default=None, help="train this stage of the config's recipe (its `stages`) instead "
                    "of its first run")
    tv.add_argument("--steps", type=positive_int, default=None, help="stop at this step instead of the config's")
    tv.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best present)")
    tv.set_defaults(func=_cmd_train_vae)

    tw = sub.add_parser("train", help="train the world model (DiT) on latent shards (torchrun for DDP)")
    tw.add_argument("--config", default="configs/tiny-cpu.yaml")
    tw.add_argument("--steps", type=positive_int, default=None, help="stop at this step instead of the config's")
    tw.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best present)")
    tw.add_argument("--run-dir", default=None, help="the run folder instead of the config's (resumed if it has state)")
    tw.add_argument("--minutes", type=positive_float, default=None, help="a time budget: the last step (and the "
                    "cooldown before it) is set from the measured rate, so the run ends in about this time")
    tw.add_argument("--batch-size", type=positive_int, default=None, help="clips a step over all processes, instead "
                    "of the config's")
    tw.set_defaults(func=_cmd_train)

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
    ew.add_argument("--checkpoint", default=None, help="world-model folder (default: checkpoints/tiny-cpu)")
    ew.add_argument("--data", default=None, help="score on this `record` directory (e.g. held-out Doom footage) "
                    "instead of the source world: PSNR by horizon and the diagnosis only (eval/footage_eval.py)")
    ew.add_argument("--probe", default=str(CHECKPOINT_DIR / "probe"))
    ew.add_argument("--drift-frames", type=int, default=10_000, help="length of the drift run (0 skips it)")
    ew.add_argument("--drift-prompt", default="drive grassland by day")
    ew.add_argument("--starts-per-scene", type=positive_int, default=2, help="runs per held-out scene, or per "
                    "episode with --data")
    ew.add_argument("--seed", type=int, default=0)
    ew.add_argument("--sheet", default=None, help="also write true | generated frames at each horizon (PNG) here")
    ew.add_argument("--drift-sheet", default=None, help="also write the drift run's frame of each minute, real "
                    "above generated (PNG), here")
    ew.add_argument("--still-frames", type=int, default=320, help="frames the still-scene run (a stopped player) "
                    "goes on after the stop (0 skips it)")
    ew.add_argument("--still-sheet", default=None, help="also write the still-scene run's frames, a row per scene "
                    "and held action (PNG), here")
    ew.add_argument("--played-seconds", type=float, default=24.0, help="length of each run of both worlds "
                    "played from a scene's prompt by the same scripted keys (played_from_prompt; 0 skips it)")
    ew.add_argument("--played-sheet", default=None, help="also write the played runs' frame of each window, the "
                    "source world above the generated one (PNG), here")
    ew.add_argument("--free-text-seconds", type=float, default=8.0, help="length of each run started from a "
                    "held-out paraphrase of a preset (free_text; 0 skips the paraphrases)")
    ew.add_argument("--device", default=None)
    stream_option(ew)
    ew.set_defaults(func=_cmd_eval, source_world_defaults={dest: ew.get_default(dest) for dest in SOURCE_WORLD_ONLY})

    tp = sub.add_parser("train-probe", help="train the inverse-dynamics probe on recorded frame pairs (eval's "
                        "judge of action accuracy)")
    tp.add_argument("--data", default="data/world_a", help="a directory written by `record`")
    tp.add_argument("--out", default=str(CHECKPOINT_DIR / "probe"))
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
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet = 0
    while quiet < len(argv) and argv[quiet] in ("-q", "--quiet"):
        quiet += 1
    if argv[quiet:quiet + 1] == [PLAY]:          # the client parses the rest: `matrix-sim play --help`
        from matrix_sim.client.app import main as play

        return play(argv[quiet + 1:] + argv[:quiet], prog=f"{_prog()} {PLAY}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, ConfigError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
