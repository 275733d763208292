"""CPU inference engines that run the exported graphs: ONNX Runtime and OpenVINO (both optional: the `runtime` extra).

Engine(name, path, threads, precision) loads one ONNX graph and runs it on named float32 tensors, returning
named numpy arrays. Both run on `threads` intra-op threads (the torch thread count the game gives the model) and
never spin idle threads (the game's display, decoder and encoder share the cores). ONNX Runtime: CPU execution
provider, every graph optimisation. OpenVINO: the CPU plugin, latency hint, one stream, no core pinning, in
`precision` (f32, or bf16 where the project runs bfloat16: device.compute_dtype), with its compiled-model cache
beside the graph, so a second process (the sampler process) loads it without compiling again.
"""
from __future__ import annotations

import importlib
import logging
import threading
from pathlib import Path
from typing import Optional

import numpy as np
import torch

log = logging.getLogger(__name__)
ENGINES = ("onnx", "openvino")
MODULES = {"onnx": "onnxruntime", "openvino": "openvino"}
LABELS = {"onnx": "onnxruntime", "openvino": "openvino"}


class EngineUnavailable(RuntimeError):
    """The engine is not installed (or does not load); the message says which and how to install it."""


def engine_module(name: str):
    """The engine's Python module, or EngineUnavailable (sys.modules[...] = None counts as not installed)."""
    try:
        return importlib.import_module(MODULES[name])
    except ImportError as exc:
        raise EngineUnavailable(f"{MODULES[name]} is not installed ({exc}); pip install 'matrix-sim[runtime]'") \
            from None


def installed_engines() -> list[str]:
    out = []
    for name in ENGINES:
        try:
            engine_module(name)
            out.append(name)
        except EngineUnavailable:
            pass
    return out


def engine_version(name: str) -> str:
    module = engine_module(name)
    if name == "openvino":
        return str(module.get_version()).split("-")[0]
    return str(module.__version__)


def _array(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.dtype != torch.float32:
            value = value.float()
        value = value.numpy()
    return np.ascontiguousarray(value, dtype=np.float32)


class Engine:
    """One ONNX graph on one engine; run(feed) takes tensors by name (extra names are ignored) and returns numpy arrays by output name."""

    def __init__(self, name: str, path: str | Path, threads: int, precision: str = "f32"):
        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}; choose one of {list(ENGINES)}")
        self.name, self.path, self.threads, self.precision = name, Path(path), max(1, int(threads)), precision
        self.label = f"{LABELS[name]} {engine_version(name)}"
        self._local = threading.local()          # an OpenVINO infer request per thread
        if name == "onnx":
            self._session = self._onnx()
            self.input_names = [i.name for i in self._session.get_inputs()]
            self.output_names = [o.name for o in self._session.get_outputs()]
        else:
            self._compiled = self._openvino()
            self.input_names = [p.get_any_name() for p in self._compiled.inputs]
            self.output_names = [p.get_any_name() for p in self._compiled.outputs]

    def _onnx(self):
        ort = engine_module("onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def _openvino(self):
        ov = engine_module("openvino")
        core = ov.Core()
        try:
            core.set_property({"CACHE_DIR": str(self.path.parent / "openvino")})
        except Exception as exc:                    # noqa: BLE001 - a read-only folder: compile every time
            log.debug("OpenVINO model cache off: %s", exc)
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": self.threads,
                  "INFERENCE_PRECISION_HINT": self.precision, "ENABLE_CPU_PINNING": False}
        return core.compile_model(str(self.path), "CPU", config)

    def run(self, feed: dict) -> dict[str, np.ndarray]:
        inputs = {name: _array(feed[name]) for name in self.input_names}
        if self.name == "onnx":
            return dict(zip(self.output_names, self._session.run(self.output_names, inputs)))
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        request.infer(inputs)
        return {name: np.array(request.get_tensor(name).data, copy=True) for name in self.output_names}


def open_engine(name: str, path: str | Path, threads: int, precision: str = "f32") -> Engine:
    """An Engine, shared within the process by every caller of the same graph, engine, threads and precision
    (OpenVINO compiles once; each thread gets its own infer request)."""
    key = (name, str(Path(path).resolve()), max(1, int(threads)), precision)
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = Engine(name, path, threads, precision)
        return _ENGINES[key]


_ENGINES: dict = {}
_LOCK = threading.Lock()
