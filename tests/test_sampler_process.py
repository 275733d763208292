"""The sampler in a process of its own: the same stream as in the caller's thread, errors that say what went
wrong, a dead child named as one, and nothing left running after close."""
import os
import signal

import numpy as np
import pytest
import torch

from matrix_sim.actions import Action
from matrix_sim.eval.timed_world import FrameByFrameSampler
from matrix_sim.models.autoencoder import FrameAutoencoder
from matrix_sim.stream import WorldModel, bundle
from matrix_sim.stream.sampler import SwinSampler
from matrix_sim.stream.sampler_process import SamplerProcess, SamplerProcessError
from matrix_sim.stream.schedule import StreamConfig

from wm_helpers import TINY_LATENT, TINY_MODEL, TINY_STREAM, TINY_VAE, hash_bank, lively_dit
from wm_helpers import one_thread  # noqa: F401 (autouse fixture)

CPU = torch.device("cpu")
CONFIG = StreamConfig(**{**TINY_STREAM, "block_frames": 2, "cache_context": True, "retarget_actions": True})


@pytest.fixture(scope="module")
def model():
    return lively_dit(TINY_MODEL).eval()


def drive(sampler, calls: int = 9) -> list[np.ndarray]:
    """Prime, stream with changing actions and prompts, restart once: every emitted block's latents and actions."""
    rng = torch.Generator().manual_seed(3)
    out = []
    sampler.reset(11)
    sampler.prime(torch.randn(3, *TINY_LATENT, generator=rng), torch.rand(3, 5, generator=rng),
                  torch.randn(384, generator=rng))
    for call in range(calls):
        if call == 5:
            sampler.reset(12)
        emitted = sampler.step(torch.rand(5, generator=rng), torch.randn(384, generator=rng))
        if emitted is not None:
            out += [emitted.latents.numpy(), emitted.actions.numpy()]
    return out


@pytest.mark.parametrize("hosted", [SwinSampler, FrameByFrameSampler])
def test_a_stream_in_the_process_is_the_stream_in_this_thread(model, hosted):
    here = drive(hosted(model, CONFIG, TINY_LATENT, CPU))
    remote = SamplerProcess(model, CONFIG, TINY_LATENT, CPU, hosted)
    try:
        there = drive(remote)
    finally:
        remote.close()
    assert len(there) == len(here) >= 6
    for a, b in zip(here, there):
        np.testing.assert_array_equal(a, b)


def test_a_call_the_child_fails_raises_here_with_its_traceback(model):
    remote = SamplerProcess(model, CONFIG, TINY_LATENT, CPU)
    try:
        with pytest.raises(SamplerProcessError, match=r"(?s)prime failed in the sampler process.*Traceback"):
            remote.prime(torch.zeros(2, 3, 3, 3), torch.zeros(2, 5), torch.zeros(384))   # wrong latent shape
        remote.reset(0)                          # the child lives on after a failed call
        assert remote.step(torch.zeros(5), torch.zeros(384)) is None     # the window is filling
    finally:
        remote.close()


def test_a_dead_child_is_named_with_its_exit_code_and_close_ends_the_process(model):
    remote = SamplerProcess(model, CONFIG, TINY_LATENT, CPU)
    remote.reset(0)
    pid = remote.pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(SamplerProcessError, match=rf"step: the sampler process \(pid {pid}\) exited with code -9"):
        remote.step(torch.zeros(5), torch.zeros(384))
    remote.close()
    remote.close()                               # twice is fine
    other = SamplerProcess(model, CONFIG, TINY_LATENT, CPU)
    other.close()
    assert not other.alive
    with pytest.raises(SamplerProcessError, match="closed"):
        other.reset(0)


def test_the_world_model_hosts_its_sampler_in_a_process_only_when_asked(model):
    info = bundle.BundleInfo(CONFIG, TINY_LATENT, 16)
    torch.manual_seed(0)
    vae, bank = FrameAutoencoder(**TINY_VAE, scaling_factor=2.0, shift_factor=0.5), hash_bank(["drive desert by day"])
    frames = {}
    for in_process in (False, True):
        world = WorldModel(model, vae, bank, info, CPU, sampler_process=in_process)
        try:
            assert isinstance(world.sampler, SamplerProcess) == in_process
            world.reset("drive desert by day", 5)
            frames[in_process] = [world.step(Action(forward=1.0, turn=(-1.0) ** i)).image for i in range(6)]
        finally:
            world.close()
        if in_process:
            assert not world.sampler.alive
    for a, b in zip(frames[False], frames[True]):
        np.testing.assert_array_equal(a, b)


class Unbuildable(SwinSampler):
    def __init__(self, *args):
        raise ValueError("this sampler cannot be built")


def test_a_child_that_cannot_build_its_sampler_says_so_at_the_first_call(model):
    remote = SamplerProcess(model, CONFIG, TINY_LATENT, CPU, Unbuildable)
    try:
        with pytest.raises(SamplerProcessError, match=r"(?s)start failed in the sampler process.*cannot be built"):
            remote.reset(0)
    finally:
        remote.close()
