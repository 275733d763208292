"""The Swin-DPM sampler in a process of its own: the game's live play on a CPU.

A stream call is hundreds of small torch ops, and the thread running them takes the GIL back after each. In the
game the main thread's moderngl calls (upload, upscale, read back on a software rasteriser) never release the
GIL, so in the same process the DiT's thread spends a good part of each call waiting for it (`bench play`
shows how much). In a child process the
sampler has a GIL of its own; the parent sends each call's action and prompt and gets the emitted block back
(a few kB through a pipe). The hosted sampler is an ordinary one (SwinSampler or a subclass), so a stream in
the child is the same stream, call for call, as one in the caller's thread (tests/test_sampler_process.py).
The child is never a fork of the caller, so a script that builds one must be import-safe (`if __name__ ==
"__main__":`), as multiprocessing asks; run_sim.py and `python -m matrix_sim` are.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import traceback
import weakref
from typing import Optional

import numpy as np
import torch

from matrix_sim.device import DTYPE_ENV, compute_dtype
from matrix_sim.models.dit import WorldDiT
from matrix_sim.stream.sampler import Emitted, SwinSampler
from matrix_sim.stream.schedule import StreamConfig

log = logging.getLogger(__name__)
CLOSE_TIMEOUT_S = 5.0
CLOSE = "close"


class SamplerProcessError(RuntimeError):
    """The sampler process failed a call, or is gone; the message says which and why."""


def _wire(value):
    """Tensors cross the pipe as numpy arrays (plain pickles, no shared-memory handles to leak)."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def _unwire(value):
    return torch.from_numpy(value) if isinstance(value, np.ndarray) else value


def _serve(conn, hosted: type, dit_config: dict, state: dict, config: StreamConfig, latent_shape: tuple,
           threads: int, dtype: str) -> None:
    """The child: build the sampler, then answer (op, args) until told to close or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl+C is the parent's to handle; it closes us
    os.environ[DTYPE_ENV] = dtype                       # the parent's number format, not a race of our own
    torch.set_num_threads(threads)
    try:
        model = WorldDiT(**dit_config)
        model.load_state_dict({name: torch.from_numpy(array) for name, array in state.items()})
        sampler = hosted(model.eval(), config, latent_shape, torch.device("cpu"))
    except Exception:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", None))
    while True:
        try:
            op, args = conn.recv()
        except EOFError:                                 # the parent died without closing us
            return
        if op == CLOSE:
            return
        try:
            out = getattr(sampler, op)(*map(_unwire, args))
            reply = ("ok", None if out is None else (_wire(out.latents), _wire(out.actions)))
        except Exception:
            reply = ("error", traceback.format_exc())
        conn.send(reply)


def _context():
    """A start method that never forks the caller (fork would copy its OpenMP and GL threads' locks): forkserver
    where there is one, whose server imports this module once, so every child after the first forks from it
    ready (a spawned child imports torch and diffusers again); spawn elsewhere."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _shut(process, conn) -> None:
    """Close the child (politely, then by force) and the pipe; safe to call twice."""
    if process.is_alive():
        try:
            conn.send((CLOSE, ()))
        except (OSError, ValueError):
            pass
        process.join(CLOSE_TIMEOUT_S)
        if process.is_alive():
            process.terminate()
            process.join(CLOSE_TIMEOUT_S)
    conn.close()


class SamplerProcess:
    """`hosted(model, config, latent_shape, cpu)` run in a child process, behind the same reset / prime / step.

    The child runs on the torch thread count the constructing thread has, in its compute dtype; a child that
    cannot build the sampler says so at the first call. Calls may come from any thread, one at a time (a lock
    keeps each request with its answer). A call the child fails raises SamplerProcessError with the child's
    traceback; a child that died raises it with its exit code."""

    def __init__(self, model: WorldDiT, config: StreamConfig, latent_shape: tuple[int, int, int],
                 device: torch.device, hosted: type = SwinSampler):
        if device.type != "cpu":
            raise ValueError(f"the sampler process runs on the CPU, not {device}")
        self.config, self.device, self.latent_shape = config, device, tuple(latent_shape)
        self.threads = torch.get_num_threads()             # the child's torch threads
        context = _context()
        self._conn, theirs = context.Pipe()
        state = {name: _wire(tensor) for name, tensor in model.state_dict().items()}
        dtype = str(compute_dtype(device)).replace("torch.", "")
        self._process = context.Process(
            target=_serve, name=f"sampler-{hosted.__name__}", daemon=True,
            args=(theirs, hosted, dict(model.config), state, config, self.latent_shape, self.threads, dtype))
        self._process.start()
        theirs.close()                                   # else a dead child's pipe would never read as closed
        self._lock = threading.Lock()
        self._closer = weakref.finalize(self, _shut, self._process, self._conn)
        # the child's "ok" is read at the first call: it starts (the first one imports torch) while the caller
        # loads the rest
        self._started = False
        log.info("sampler %s starting in process %d (%d torch threads, %s)", hosted.__name__, self.pid,
                 self.threads, dtype)

    def reset(self, seed: int) -> None:
        self._call("reset", int(seed))

    def prime(self, latents: torch.Tensor, actions: torch.Tensor, prompt: torch.Tensor) -> None:
        self._call("prime", latents, actions, prompt)

    def step(self, action: torch.Tensor, prompt: torch.Tensor) -> Optional[Emitted]:
        out = self._call("step", action, prompt)
        return None if out is None else Emitted(*map(_unwire, out))

    def close(self) -> None:
        self._closer()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _call(self, op: str, *args):
        with self._lock:
            if not self._closer.alive:
                raise SamplerProcessError(f"{op}: the sampler process was closed")
            if not self._started:
                self._receive("start")
                self._started = True
            try:
                self._conn.send((op, tuple(map(_wire, args))))
            except (BrokenPipeError, ConnectionResetError):
                raise self._gone(op) from None
            return self._receive(op)

    def _receive(self, op: str):
        try:
            message = self._conn.recv()
        except (EOFError, ConnectionResetError):
            raise self._gone(op) from None
        status, value = message
        if status == "error":
            raise SamplerProcessError(f"{op} failed in the sampler process:\n{value}")
        return value

    def _gone(self, op: str) -> SamplerProcessError:
        self._process.join(CLOSE_TIMEOUT_S)
        return SamplerProcessError(f"{op}: the sampler process (pid {self.pid}) exited with code "
                                   f"{self._process.exitcode}")
