"""The stream's DiT call and the frame decoder on a CPU inference engine (ONNX Runtime, OpenVINO) or on torch.

graphs.py exports them as ONNX graphs, engines.py runs those, stream.py puts them behind the sampler's and the
decoder's interfaces, choice.py decides which plays (--runtime torch|onnx|openvino|auto). The engines are an
optional extra (`pip install 'matrix-sim[runtime]'`); without them the game plays on torch. This package's own
import is light (the command line reads RUNTIMES); the rest loads on first use.
"""
RUNTIMES = ("auto", "torch", "onnx", "openvino")
RUNTIME_ENV = "MATRIX_SIM_RUNTIME"

__all__ = ["RUNTIMES", "RUNTIME_ENV", "TORCH", "Runtime", "default_runtime", "prepare_runtime"]


def __getattr__(name: str):
    if name in ("TORCH", "Runtime", "default_runtime", "prepare_runtime"):
        from matrix_sim.runtime import choice

        return getattr(choice, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
