"""Which runtime plays the stream's DiT call and the frame decoder: torch, ONNX Runtime or OpenVINO.

prepare_runtime(choice, ...) turns the player's choice (--runtime, or MATRIX_SIM_RUNTIME; default auto) into a
Runtime: "torch" is eager PyTorch as ever; "onnx" and "openvino" export the two graphs (cached, graphs.py), open
them on that engine, and use it for a part only where its output agrees with eager float32 PyTorch on a probe
call; "auto" times torch (in the device's compute dtype) and every engine installed on the probe calls and
takes, for each part, the fastest that agrees. The engines are optional (`pip install 'matrix-sim[runtime]'`):
without them every choice plays on torch, with a log line saying why. Engines run on the CPU only.

The graphs are cached beside the checkpoint (CHECKPOINT/.runtime-cache/, or under ~/.cache/matrix-sim/runtime
when that folder is not writable or there is no checkpoint), named by a hash of the weights, the shape, the graph
format and torch's version, so new weights export anew; auto's choice is cached there too, per engine versions,
CPU, thread count and precision, so a second start skips the race.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from matrix_sim.config import write_atomic
from matrix_sim.device import autocast, compute_dtype, cpu_name
from matrix_sim.runtime import RUNTIME_ENV, RUNTIMES
from matrix_sim.runtime.engines import ENGINES, Engine, EngineUnavailable, LABELS, engine_module, engine_version, \
    open_engine
from matrix_sim.runtime.graphs import ExportError, StreamCall, StreamShape, decoder_example, export_decoder, \
    cache_slots, export_stream, graph_key, stream_example, stream_names
from matrix_sim.runtime.stream import EngineDecoder, EngineStream, GraphSpec, HostedSampler

log = logging.getLogger(__name__)
CACHE_FOLDER = ".runtime-cache"
USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "matrix-sim" / "runtime"
KEEP_GRAPHS = 8              # graphs kept per cache folder (the newest); older ones are removed
RACE_CALLS = 5               # timed probe calls per part and candidate (after one untimed)
AGREEMENT = {"f32": 1e-3, "bf16": 5e-2}     # max abs difference from eager float32, relative to max(1, |ref|)


def default_runtime() -> str:
    """MATRIX_SIM_RUNTIME, else auto."""
    return os.environ.get(RUNTIME_ENV) or "auto"


@dataclass(frozen=True)
class Runtime:
    """What plays the stream call (`stream`) and the decoder (`decoder`): a GraphSpec each, or None for torch."""

    stream: Optional[GraphSpec] = None
    decoder: Optional[GraphSpec] = None
    decoder_frames: int = 0
    figures: dict = field(default_factory=dict)      # the probe's timings and agreement, where it ran

    @property
    def name(self) -> str:
        """The DiT's runtime: torch, onnx or openvino."""
        return self.stream.engine if self.stream else "torch"

    @property
    def label(self) -> str:
        """For the HUD and logs: the engine that plays the DiT, and the decoder's where it differs."""
        dit = LABELS[self.stream.engine] if self.stream else "torch"
        decoder = LABELS[self.decoder.engine] if self.decoder else "torch"
        return f"runtime {dit}" if dit == decoder else f"runtime {dit}, decoder {decoder}"

    def stream_model(self, dit):
        """What a SwinSampler in this process calls for the DiT."""
        return EngineStream(dit, self.stream) if self.stream else dit

    def hosted(self, sampler: type):
        """What a SamplerProcess hosts (built in its child)."""
        return HostedSampler(sampler, self.stream) if self.stream else sampler

    def decoder_for(self, vae) -> Callable[[torch.Tensor], torch.Tensor]:
        """Raw latents -> images, as vae.decode."""
        return EngineDecoder(vae, self.decoder, self.decoder_frames) if self.decoder else vae.decode


TORCH = Runtime()


def cache_folder(checkpoint: Optional[str | Path]) -> Path:
    """CHECKPOINT/.runtime-cache when it can be written, else a folder of the user's cache for this checkpoint."""
    if checkpoint is not None:
        folder = Path(checkpoint) / CACHE_FOLDER
        try:
            folder.mkdir(exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            pass
    where = str(Path(checkpoint).resolve()) if checkpoint is not None else "no-checkpoint"
    folder = USER_CACHE / hashlib.sha256(where.encode()).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cached_graph(folder: Path, key: str, export: Callable[[Path], Path]) -> Path:
    """The graph `key` in `folder`, exported first when absent (the older graphs beyond KEEP_GRAPHS removed)."""
    path = folder / f"{key}.onnx"
    if path.is_file():
        os.utime(path)
        return path
    start = time.perf_counter()
    export(path)
    log.info("exported %s in %.1f s", path, time.perf_counter() - start)
    graphs = sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in graphs[KEEP_GRAPHS:]:
        old.unlink(missing_ok=True)
    return path


def _timed(fn: Callable[[], object], calls: int) -> float:
    """Median ms of `calls` calls after an untimed one (calls = 0: the one, timed)."""
    start = time.perf_counter()
    fn()
    times = [time.perf_counter() - start] if not calls else []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _difference(outputs: dict, reference: dict) -> float:
    """Max abs difference over the named outputs, relative to max(1, the reference's largest magnitude)."""
    worst = 0.0
    for name, ref in reference.items():
        got = torch.as_tensor(outputs[name]).float()
        worst = max(worst, float((got - ref).abs().max() / max(1.0, float(ref.abs().max()))))
    return worst


def probe_stream(dit, shape: StreamShape, device: torch.device, engines: dict[str, Engine], calls: int) -> dict:
    """Time the stream call on torch (the compute dtype) and each engine on one probe, and each engine's
    difference from eager float32."""
    call = StreamCall(dit, shape).eval()
    inputs = stream_example(dit, shape, seed=1, start=1000)
    in_names, out_names = stream_names(cache_slots(dit), shape)
    args = [inputs[n] for n in in_names]
    with torch.inference_mode():
        out = call(*args)
        reference = dict(zip(out_names, out if isinstance(out, tuple) else (out,)))

        def eager():
            with autocast(device):
                call(*args)

        figures = {"torch": {"ms": round(_timed(eager, calls), 2), "dtype": str(compute_dtype(device))[6:]}}
    for name, engine in engines.items():
        figures[name] = {"ms": round(_timed(lambda: engine.run(inputs), calls), 2),
                         "difference": _difference(engine.run(inputs), reference), "precision": engine.precision}
    return figures


def probe_decoder(vae, frames: int, latent_shape, device: torch.device, engines: dict[str, Engine],
                  calls: int) -> dict:
    latents = decoder_example(frames, latent_shape, seed=1)["latents"]
    fast = latents.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        reference = {"images": vae.decode(fast)}

        def eager():
            with autocast(device):
                vae.decode(fast)

        figures = {"torch": {"ms": round(_timed(eager, calls), 2), "dtype": str(compute_dtype(device))[6:]}}
    for name, engine in engines.items():
        figures[name] = {"ms": round(_timed(lambda: engine.run({"latents": latents}), calls), 2),
                         "difference": _difference(engine.run({"latents": latents}), reference),
                         "precision": engine.precision}
    return figures


def _pick(figures: dict, auto: bool) -> str:
    """The part's runtime: the fastest agreeing one (auto), or the one engine asked for if it agrees."""
    agreeing = {name: f["ms"] for name, f in figures.items()
                if name == "torch" or f["difference"] <= AGREEMENT[f["precision"]]}
    for name, f in figures.items():
        if name not in agreeing:
            log.warning("runtime %s: differs from eager float32 torch by %.3g (more than %g): not used", name,
                        f["difference"], AGREEMENT[f["precision"]])
    if not auto:
        return next((n for n in agreeing if n != "torch"), "torch")
    return min(agreeing, key=agreeing.get)


def _decision_path(folder: Path, stream: Path, decoder: Path, engines: list[str], threads: int,
                   precision: str, device: torch.device) -> Path:
    parts = [stream.name, decoder.name, str(threads), precision, str(compute_dtype(device)), platform.processor(),
             cpu_name(), torch.__version__, *(f"{e}={engine_version(e)}" for e in engines)]
    return folder / f"choice-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:20]}.json"


def prepare_runtime(choice: Optional[str], dit, vae, stream_config, latent_shape, checkpoint: Optional[str | Path],
                    device: torch.device, threads: Optional[int] = None, calls: int = RACE_CALLS) -> Runtime:
    """The Runtime for `choice` (None: default_runtime()); see the module doc. Never fails for want of an engine:
    it falls back to torch and says why in the log."""
    choice = choice or default_runtime()
    if choice not in RUNTIMES:
        raise ValueError(f"unknown runtime {choice!r}; choose one of {list(RUNTIMES)}")
    if choice == "torch":
        return TORCH
    if device.type != "cpu":
        log.info("runtime %s: the engines run on the CPU; the model runs on torch on %s", choice, device)
        return TORCH
    present = []
    for name in ENGINES if choice == "auto" else (choice,):
        try:
            engine_module(name)
            present.append(name)
        except EngineUnavailable as exc:
            if choice != "auto":
                log.warning("runtime %s: %s; playing on torch", choice, exc)
    if not present:
        if choice == "auto":
            log.info("runtime auto: no CPU inference engine installed (pip install 'matrix-sim[runtime]'); "
                     "playing on torch")
        return TORCH
    threads = threads or torch.get_num_threads()
    precision = "bf16" if compute_dtype(device) == torch.bfloat16 else "f32"
    shape = StreamShape.steady(stream_config, latent_shape)
    frames = stream_config.block_frames
    try:
        folder = cache_folder(checkpoint)
        stream_path = cached_graph(folder, graph_key(dit, "stream", shape.key()),
                                   lambda p: export_stream(dit, shape, p))
        decoder_key = "x".join(map(str, (frames, *latent_shape)))
        decoder_path = cached_graph(folder, graph_key(vae, "decoder", decoder_key),
                                    lambda p: export_decoder(vae, frames, latent_shape, p))
    except (ExportError, OSError) as exc:
        log.warning("runtime %s: cannot export the graphs (%s); playing on torch", choice, exc)
        return TORCH
    decision = _decision_path(folder, stream_path, decoder_path, present, threads, precision, device) \
        if choice == "auto" else None
    picked = _read_decision(decision)
    if picked is None:
        try:
            picked = _decide(choice, dit, vae, shape, frames, latent_shape, device, present, stream_path, decoder_path,
                             threads, precision, calls)
        except Exception as exc:             # noqa: BLE001 - an engine that fails to load or run: torch plays
            log.warning("runtime %s: the engine failed (%s: %s); playing on torch", choice, type(exc).__name__, exc)
            return TORCH
        if decision is not None:
            _write_decision(decision, picked)
    stream_engine, decoder_engine = picked["stream"], picked["decoder"]
    runtime = Runtime(
        GraphSpec(stream_engine, str(stream_path), threads, precision, shape) if stream_engine != "torch" else None,
        GraphSpec(decoder_engine, str(decoder_path), threads, precision) if decoder_engine != "torch" else None,
        frames, picked.get("figures", {}))
    log.info("runtime %s: %s (%d thread(s), %s; graphs in %s)", choice, runtime.label, threads, precision, folder)
    return runtime


def _decide(choice, dit, vae, shape, frames, latent_shape, device, present, stream_path, decoder_path, threads,
            precision, calls) -> dict:
    auto = choice == "auto"
    timed = calls if auto else 0
    stream_engines = {name: open_engine(name, stream_path, threads, precision) for name in present}
    decoder_engines = {name: open_engine(name, decoder_path, threads, precision) for name in present}
    figures = {"stream": probe_stream(dit, shape, device, stream_engines, timed),
               "decoder": probe_decoder(vae, frames, latent_shape, device, decoder_engines, timed)}
    picked = {part: _pick(figures[part], auto) for part in ("stream", "decoder")}
    if auto:
        for part in ("stream", "decoder"):
            log.info("runtime auto, %s: %s -> %s", part, ", ".join(
                f"{name} {f['ms']:.1f} ms" + (f" (differs by {f['difference']:.1g})" if "difference" in f else "")
                for name, f in figures[part].items()), picked[part])
    return {**picked, "figures": figures}


def _read_decision(path: Optional[Path]) -> Optional[dict]:
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("stream") in ("torch", *ENGINES) and data.get("decoder") in ("torch", *ENGINES):
            return data
    except (OSError, ValueError):
        pass
    return None


def _write_decision(path: Path, picked: dict) -> None:
    try:
        write_atomic(path, json.dumps(picked, indent=1) + "\n")
    except OSError as exc:
        log.debug("cannot cache the runtime choice in %s: %s", path, exc)
