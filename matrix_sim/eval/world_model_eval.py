"""`python -m matrix_sim eval --json`: the world model measured against the source world.

- psnr_by_horizon / copy_last_psnr_by_horizon: held-out clips (matrix_sim.eval.heldout: unseen seeds, every
  biome, mode and time); the model is primed with `context` real frames and continues under the clip's true
  actions (matrix_sim.eval.rollout: frame j conditioned on the action that produced true frame j); PSNR of
  generated frame h vs true frame h, and of the last context frame vs true frame h (copy-last baseline), for
  each horizon h, pooled over the runs: the PSNR of their mean squared error. A mean of per-run dB is not
  used for these: where the player stands still the true frame h is the last context frame to the pixel, so
  copy-last's PSNR there is infinite and such a mean is whatever the floor of the MSE makes it.
  per_run_psnr_by_horizon keeps the mean and the median of the runs' dB,
  beside the share of runs the generated frame beats copy-last in and the number of runs where copy-last is
  exact. Generated frames come out of the autoencoder, so two more figures say what that costs:
  codec_ceiling_psnr_by_horizon (true frame h encoded and decoded: the best any model on these latents can
  score) and copy_last_through_codec_psnr_by_horizon (the last context frame encoded and decoded: copy-last
  as a latent model would make it).
- action_accuracy: the inverse-dynamics probe (matrix_sim.models.probe) on consecutive generated frames vs
  the actions they were conditioned on; action_accuracy_real: the same probe on the true frames at the same
  places (its ceiling). Mean over the probe's heads (turn class, forward class); per head in
  action_accuracy_by_head, with the always-the-most-common-class rate as chance.
- action_accuracy_played: the probe on frames played through WorldModel.step with retarget_actions off
  and on (matrix_sim.eval.played_actions: the latency lever must not cost action accuracy).
- drift (matrix_sim.eval.drift), still_scene (matrix_sim.eval.still_scene: a stopped player) and
  prompt_switch_s (matrix_sim.eval.prompt_switch): see those modules; the output carries a one-line `what`
  for each.
- played_from_prompt (both worlds started from a prompt and played by one script) and primed_pan (the pan of
  single frames generated from the source world's frames before them while steering): see those modules.
- free_text (matrix_sim.eval.free_text): held-out paraphrases of presets, resolved, started from and switched to.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from matrix_sim.eval.diagnosis import diagnosis_eval
from matrix_sim.eval.drift import drift_eval
from matrix_sim.eval.free_text import DEFAULT_SECONDS as FREE_TEXT_SECONDS, free_text_eval
from matrix_sim.eval.heldout import HeldoutClip, heldout_clips, heldout_scenes
from matrix_sim.eval.metrics import mse, pooled_psnr, psnr_of_mse
from matrix_sim.eval.played_actions import played_accuracy
from matrix_sim.eval.played_from_prompt import DEFAULT_SECONDS, PLAYED_PROMPTS, played_from_prompt
from matrix_sim.eval.primed_pan import primed_pan
from matrix_sim.eval.probe import DEFAULT_PROBE_DIR, load_probe, majority_rate
from matrix_sim.eval.prompt_switch import DEFAULT_SWITCHES, prompt_switch_eval
from matrix_sim.eval.rollout import Rollout, continue_frames
from matrix_sim.eval.sheets import rollout_sheet
from matrix_sim.eval.still_scene import frames_after_up_to, still_eval
from matrix_sim.eval.vae_eval import reconstruct
from matrix_sim.models.probe import HEADS, InverseDynamicsProbe, agreement
from matrix_sim.world.scenes import Scene

log = logging.getLogger(__name__)
HORIZONS = (1, 4, 8, 16)
COMPARED = ("generated", "copy_last", "copy_last_through_codec", "codec_ceiling")     # each vs true frame h
DEFAULT_DRIFT_PROMPT = "drive grassland by day"
SHEET_ROWS = 6


def clip_frames(world, horizons: Sequence[int], context: int, starts_per_scene: int) -> int:
    """Frames a held-out clip needs for horizon_eval: each start's context + horizon, and the window's lead."""
    return starts_per_scene * (context + max(horizons)) + world.sampler.config.window_frames


def horizon_eval(world, probe: Optional[InverseDynamicsProbe], clips: Sequence[HeldoutClip],
                 horizons: Sequence[int] = HORIZONS, context: int = 8, starts_per_scene: int = 1, seed: int = 0,
                 progress: bool = True, sheet_rows: int = 0) -> tuple[list[Rollout], dict]:
    """PSNR by horizon (model and copy-last) and, given a probe, its agreement, on held-out clips of clip_frames()
    (anything with prompt, frames and actions); returns (the first start's rollout of `sheet_rows` clips spread
    over the list, for the sheet; figures)."""
    horizon = max(horizons)
    span = context + horizon
    errors = {name: {h: [] for h in horizons} for name in COMPARED}     # each run's MSE to true frame h
    gen_pairs, real_pairs, actions = ([], []), ([], []), []
    runs = [(clip, s * span) for clip in clips for s in range(starts_per_scene)]
    shown = set(range(0, len(runs), starts_per_scene * max(1, len(clips) // sheet_rows))[:sheet_rows]) \
        if sheet_rows else set()
    kept = []
    for i, (clip, start) in enumerate(tqdm(runs, desc="eval: horizons", disable=not progress)):
        images, taken = clip.frames[start:], clip.actions[start:]
        generated = continue_frames(world, images, taken, context, horizon, clip.prompt, seed + i)
        truth = images[context:context + horizon]
        coded = reconstruct(world.vae, images[context - 1:context + horizon])     # last context frame + truth
        if i in shown:
            kept.append(Rollout(clip.prompt, images[context - 1], truth, generated))
        for h in horizons:
            compared = (generated[h - 1], images[context - 1], coded[0], coded[h])
            for name, frame in zip(COMPARED, compared):
                errors[name][h].append(mse(frame, truth[h - 1]))
        # pairs (frame j - 1, frame j), j >= 1 within the horizon; frame j followed action context - 1 + j
        gen_pairs[0].append(generated[:-1]), gen_pairs[1].append(generated[1:])
        real_pairs[0].append(truth[:-1]), real_pairs[1].append(truth[1:])
        actions.append(taken[context:context + horizon - 1])
    figures = {
        **{_psnr_key(name): _by_horizon(errors[name], pooled_psnr) for name in COMPARED},
        "psnr_pooling": "10 log10(255^2 / the mean over runs of the squared error to the true frame at horizon h)",
        "per_run_psnr_by_horizon": _per_run(errors),
        "horizon_runs": len(runs),
    }
    if probe is None:
        return kept, figures
    labels = probe.labels(np.concatenate(actions))
    on_generated = agreement(probe.predict(np.concatenate(gen_pairs[0]), np.concatenate(gen_pairs[1])), labels)
    on_real = agreement(probe.predict(np.concatenate(real_pairs[0]), np.concatenate(real_pairs[1])), labels)
    return kept, {
        **figures,
        "action_accuracy": round(on_generated["mean"], 4),
        "action_accuracy_real": round(on_real["mean"], 4),
        "action_accuracy_by_head": {"generated": {h: round(on_generated[h], 4) for h in HEADS},
                                    "real": {h: round(on_real[h], 4) for h in HEADS},
                                    "chance": {h: round(v, 4) for h, v in majority_rate(labels).items()}},
        "probe_pairs": int(len(labels["turn"])),
    }


def _psnr_key(name: str) -> str:
    """The result's key for one of COMPARED: psnr_by_horizon for the generated frames, NAME_psnr_by_horizon else."""
    return "psnr_by_horizon" if name == "generated" else f"{name}_psnr_by_horizon"


def _by_horizon(errors: dict, statistic) -> dict:
    return {str(h): round(float(statistic(v)), 2) for h, v in errors.items()}


def _per_run(errors: dict) -> dict:
    """The runs one by one: mean and median of their dB, how often generated beats copy-last, exact copies."""
    in_db = {name: {h: [psnr_of_mse(e) for e in v] for h, v in by.items()} for name, by in errors.items()}
    generated, copy = errors["generated"], errors["copy_last"]
    return {"mean_db": {name: _by_horizon(by, np.mean) for name, by in in_db.items()},
            "median_db": {name: _by_horizon(by, np.median) for name, by in in_db.items()},
            "generated_beats_copy_last_share": {str(h): round(float(np.mean(np.less(generated[h], copy[h]))), 3)
                                                for h in generated},
            "copy_last_exact_runs": {str(h): int(np.sum(np.equal(v, 0.0))) for h, v in copy.items()}}


def targets(result: dict) -> dict:
    """The benchmark targets, checked: beats copy-last at every horizon (pooled PSNR; the per-run mean and
    median beside it), action accuracy >= 90 % of the probe's ceiling, drift inside the real footage's spread;
    and what retarget_actions does to the action accuracy of played frames."""
    gen, copy = result["psnr_by_horizon"], result["copy_last_psnr_by_horizon"]
    real = result["action_accuracy_real"]
    ratio = round(result["action_accuracy"] / real, 4) if real > 0 else None
    drift = result.get("drift")
    played = result.get("action_accuracy_played")
    codec_copy = result["copy_last_through_codec_psnr_by_horizon"]
    per_run = {statistic: result["per_run_psnr_by_horizon"][statistic] for statistic in ("mean_db", "median_db")}
    return {"beats_copy_last_every_horizon": all(gen[h] > copy[h] for h in gen),
            "beats_copy_last_through_codec_every_horizon": all(gen[h] > codec_copy[h] for h in gen),
            **{f"beats_copy_last_every_horizon_per_run_{statistic}": all(
                by["generated"][h] > by["copy_last"][h] for h in gen) for statistic, by in per_run.items()},
            "action_accuracy_ratio": ratio, "action_accuracy_ratio_ok": ratio is not None and ratio >= 0.9,
            "drift_inside_real_spread": drift["inside_real_spread"] if drift else None,
            "retarget_action_accuracy_change": round(played["on"] - played["off"], 4) if played else None}


def eval_world_model(checkpoint: str | Path, probe: str | Path = DEFAULT_PROBE_DIR,
                     horizons: Sequence[int] = HORIZONS, context: int = 8, scenes: Optional[Sequence[Scene]] = None,
                     starts_per_scene: int = 2, drift_frames: int = 10_000,
                     drift_prompt: str = DEFAULT_DRIFT_PROMPT, drift_window_s: float = 60.0,
                     switches=DEFAULT_SWITCHES, switch_frames: int = 64, switch_persist: int = 4, seed: int = 0,
                     device: Optional[str] = None, progress: bool = True, sheet: Optional[str | Path] = None,
                     stream_overrides: Optional[dict] = None, drift_sheet: Optional[str | Path] = None,
                     still_frames: int = 320, still_sheet: Optional[str | Path] = None,
                     played_seconds: float = DEFAULT_SECONDS, played_prompts: Sequence[str] = PLAYED_PROMPTS,
                     played_sheet: Optional[str | Path] = None, free_text_seconds: float = FREE_TEXT_SECONDS) -> dict:
    """Every figure above for the world-model bundle at `checkpoint`, as one JSON-ready dict.

    scenes: held-out scenes for the horizon figures (default: all 36 of matrix_sim.eval.heldout);
    drift_frames: length of the drift run (0 skips it); switches: (old, new) preset prompts (empty skips);
    sheet: also write true | generated frames at each horizon for a few of the clips (a PNG) here;
    drift_sheet: also write the drift run's middle frame of each window, real above generated (a PNG), here;
    still_frames: frames the still-scene run goes on after the stop (0 skips it); still_sheet: its PNG here;
    played_seconds: length of each played_from_prompt run (0 skips it and primed_pan), played_prompts: their scenes,
    played_sheet: its PNG here; free_text_seconds: length of each run started from a paraphrase (0 skips free_text);
    stream_overrides: StreamConfig fields to run the stream with instead of the checkpoint's (e.g. levels,
    action_guidance); the result's `stream` is the configuration that was scored."""
    from matrix_sim.stream import WorldModel

    started = time.perf_counter()
    world = WorldModel.from_pretrained(checkpoint, device=device, stream_overrides=stream_overrides)
    probe_model = load_probe(probe, world.torch_device)
    scenes = list(scenes) if scenes else heldout_scenes()
    result = {"checkpoint": str(checkpoint), "probe": str(probe), "device": world.device,
              "threads": torch.get_num_threads(), "frame_rate": world.frame_rate, "context_frames": context,
              "stream": dataclasses.asdict(world.sampler.config),
              "probe_predicts": "turn: left/straight/right (|turn| > %g); forward: back/none/forward (|forward| > %g)"
                                % (probe_model.config.turn_threshold, probe_model.config.forward_threshold)}
    timings = {}
    t = time.perf_counter()
    clips = heldout_clips(clip_frames(world, horizons, context, starts_per_scene), scenes=scenes)
    rollouts, figures = horizon_eval(world, probe_model, clips, horizons, context, starts_per_scene, seed, progress,
                                     sheet_rows=SHEET_ROWS if sheet else 0)
    result.update(figures)
    timings["horizons"] = time.perf_counter() - t
    t = time.perf_counter()
    result["diagnosis"] = diagnosis_eval(world, clips, context, horizons, starts_per_scene, seed, figures)
    timings["diagnosis"] = time.perf_counter() - t
    t = time.perf_counter()
    result["action_accuracy_played"] = played_accuracy(world, probe_model, clips, context, max(horizons), seed)
    timings["played"] = time.perf_counter() - t
    if sheet:
        result["sheet"] = str(rollout_sheet(rollouts, sheet, horizons))
    if drift_frames > 0:
        t = time.perf_counter()
        bar = tqdm(total=drift_frames, desc="eval: drift", disable=not progress)
        result["drift"] = drift_eval(world, drift_prompt, drift_frames, seed, context, drift_window_s,
                                     progress=lambda i: bar.update(1), sheet=drift_sheet,
                                     codec=lambda images: reconstruct(world.vae, images))
        bar.close()
        timings["drift"] = time.perf_counter() - t
    else:
        result["drift"] = None
    if still_frames > 0:
        t = time.perf_counter()
        result["still_scene"] = still_eval(world, frames_after=frames_after_up_to(still_frames), context=context,
                                           seed=seed, sheet=still_sheet)
        timings["still_scene"] = time.perf_counter() - t
    else:
        result["still_scene"] = None
    if switches:
        t = time.perf_counter()
        result.update(prompt_switch_eval(world, switches, context, after=switch_frames, persist=switch_persist,
                                         seed=seed))
        timings["prompt_switch"] = time.perf_counter() - t
    else:
        result["prompt_switch_s"] = None
    if played_seconds > 0:
        t = time.perf_counter()
        result["played_from_prompt"] = played_from_prompt(world, played_prompts, played_seconds, seed,
                                                          sheet=played_sheet)
        timings["played_from_prompt"] = time.perf_counter() - t
        t = time.perf_counter()
        result["primed_pan"] = primed_pan(world, played_prompts)
        timings["primed_pan"] = time.perf_counter() - t
    else:
        result["played_from_prompt"] = result["primed_pan"] = None
    if free_text_seconds > 0:
        t = time.perf_counter()
        result["free_text"] = free_text_eval(world, free_text_seconds, seed, context, switch_frames, switch_persist)
        timings["free_text"] = time.perf_counter() - t
    else:
        result["free_text"] = None
    result["targets"] = targets(result)
    timings["total"] = time.perf_counter() - started
    result["eval_s"] = {k: round(v, 1) for k, v in timings.items()}
    world.close()
    return result
