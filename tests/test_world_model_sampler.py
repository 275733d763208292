"""The Swin-DPM sampler: one level down per call, blocks leave clean, bounded memory, diffusers-exact Euler."""
import resource
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from matrix_sim.models.dit import WorldDiT
from matrix_sim.stream.sampler import SwinSampler
from matrix_sim.stream.schedule import StreamConfig, euler_step, level_schedule, parse_overrides

from wm_helpers import TINY_LATENT, TINY_MODEL, one_thread  # noqa: F401 (autouse fixture)

CPU = torch.device("cpu")
TARGET = 0.25                     # the clean latent value the oracle model steers every frame to


class Oracle(torch.nn.Module):
    """Predicts the exact v = (x_s - x0) / s towards x0 = TARGET, and records the levels it is asked about."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(action_dim=5, prompt_dim=384)
        self.calls = []

    def forward(self, latents, levels, actions, prompts, cache=None, commit_frames=0):
        self.calls.append((levels[0].clone(), actions[0].clone()))
        s = levels[..., None, None, None]
        return torch.where(s > 0, (latents - TARGET) / s.clamp(min=1e-6), torch.zeros_like(latents))


def sampler(model, **stream):
    config = StreamConfig(**{"context_frames": 2, "levels": 4, "block_frames": 2, "shift": 3.0, **stream})
    s = SwinSampler(model, config, TINY_LATENT, CPU)
    s.reset(7)
    return s


def action(value: float) -> torch.Tensor:
    return torch.full((5,), value)


def test_levels_step_down_one_per_call_and_blocks_leave_clean():
    oracle = Oracle()
    s = sampler(oracle, context_level=0.0)
    schedule = level_schedule(4, 3.0).tolist()
    emitted_at = []
    for call in range(10):
        out = s.step(action(0.0), torch.zeros(384))
        window_levels = oracle.calls[-1][0][-len(s.window) * 2 - (2 if out is not None else 0):]
        if out is not None:
            emitted_at.append(call)
            assert torch.allclose(out.latents, torch.full_like(out.latents, TARGET), atol=1e-5)
        # the window as the model saw it this call: oldest block lowest, newest entering at s_L = 1
        blocks = window_levels[::2].tolist()
        assert blocks[-1] == pytest.approx(1.0)
        assert blocks == pytest.approx(schedule[4 - len(blocks) + 1:])
        # after the call every block sits one level lower; the one that reached 0 has left
        assert s.levels() == pytest.approx(schedule[4 - len(s.window):4])
    assert emitted_at == list(range(3, 10))       # L - 1 calls to fill the window, then a block every call


@pytest.mark.parametrize("cache_context", [True, False])
def test_memory_does_not_grow_over_1000_calls(cache_context):
    model = WorldDiT(**TINY_MODEL).eval()
    s = sampler(model, cache_context=cache_context, levels=2, block_frames=1)
    sizes = []
    for call in range(1000):
        s.step(action(0.5), torch.zeros(384))
        if call == 100:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if call >= 100:
            sizes.append(s.nbytes())
    assert len(set(sizes)) == 1
    assert len(s.window) <= 2 and len(s.context) <= 2
    assert (s.cache is not None) == cache_context
    assert s.cache is None or s.cache.frames() <= 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 50_000     # KiB


def test_cached_and_recomputed_context_agree_until_the_ring_is_full():
    torch.manual_seed(0)
    model = WorldDiT(**TINY_MODEL).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.1)
    streams = {}
    for cache_context in (True, False):
        s = sampler(model, cache_context=cache_context, context_frames=8, context_level=0.1)
        streams[cache_context] = [s.step(action(i / 10), torch.ones(384)) for i in range(7)]
    assert any(block is not None for block in streams[True])
    for cached, recomputed in zip(streams[True], streams[False]):
        assert (cached is None) == (recomputed is None)
        if cached is not None:
            assert torch.allclose(cached.latents, recomputed.latents, atol=1e-5)


@pytest.mark.parametrize("retarget", [False, True])
def test_window_frames_take_the_newest_action_only_when_asked(retarget):
    s = sampler(Oracle(), retarget_actions=retarget)
    for call in range(3):
        out = s.step(action(call), torch.zeros(384))
    out = s.step(action(9.0), torch.zeros(384))
    expected = 9.0 if retarget else 0.0          # the emitted block entered with action 0
    assert torch.all(out.actions == expected)


def test_euler_step_agrees_with_diffusers_flow_match_scheduler():
    levels, shift = 6, 3.0
    schedule = level_schedule(levels, shift)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, levels + 1)[:-1].tolist())
    assert torch.allclose(scheduler.sigmas.float(), schedule.flip(0), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    ours = theirs = torch.randn(1, 4, 4, 6, generator=g)
    for i, t in enumerate(scheduler.timesteps):
        v = torch.randn(ours.shape, generator=g)
        s, s_next = schedule[levels - i], schedule[levels - i - 1]
        ours = euler_step(ours, v, s, s_next)
        theirs = scheduler.step(v, t, theirs).prev_sample
        assert torch.allclose(ours, theirs, atol=1e-5)


def test_stream_overrides_from_the_command_line_are_typed_and_checked():
    assert parse_overrides(["levels=2", "action_guidance=3", "retarget_actions=false", "shift=2.5"]) == {
        "levels": 2, "action_guidance": 3, "retarget_actions": False, "shift": 2.5}
    for bad, says in [("lvls=2", "unknown key 'lvls'"), ("levels", "KEY=VALUE"), ("levels=", "KEY=VALUE"),
                      ("levels=2.5", "whole number"), ("retarget_actions=1", "true or false"),
                      ("shift=yes", "number")]:
        with pytest.raises(ValueError, match=says):
            parse_overrides([bad])


def test_eval_refuses_a_bad_stream_override_in_one_line(capsys):
    from matrix_sim.cli import main

    assert main(["eval", "--checkpoint", "checkpoints/tiny-cpu", "--stream", "levels=two"]) == 2
    assert "levels takes a whole number" in capsys.readouterr().err
