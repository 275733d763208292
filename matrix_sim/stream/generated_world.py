"""WorldModel: the generated world behind the World protocol (reset / step / set_prompt), forever.

It streams with the Swin-DPM sampler and decodes each emitted block with the frame autoencoder. A stream
starts from the prompt alone (reset) or from real frames (prime, e.g. the source world's, for evaluation);
with a starter (the game's choice, stream/starter.py) reset and set_prompt start the scene from a short
source-world drive of it. reset again restarts the stream (the client's Backspace). A frame leaves the
window L calls after it entered with its action; `retarget_actions` in the stream config lets window
frames take the newest action. With `decode_ahead` (the game's choice on a CPU) the next DiT call runs while
the last block decodes (stream/decode_ahead.py); with `sampler_process` (also the game's choice on a CPU) the
sampler runs in a process of its own, out of the way of the display's hold on the GIL (stream/sampler_process.py).
"""
from __future__ import annotations

import dataclasses
import logging
from collections import deque
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from matrix_sim.actions import IDLE, Action
from matrix_sim.device import decodes_ahead, describe, pick_device, samples_in_process
from matrix_sim.models.autoencoder import FrameAutoencoder, images_to_tensor, tensor_to_images
from matrix_sim.models.checkpoint import CheckpointError, load_model
from matrix_sim.models.dit import WorldDiT
from matrix_sim.models.loading import load_autoencoder
from matrix_sim.models.prompt import PromptBank
from matrix_sim.runtime import TORCH, Runtime, prepare_runtime
from matrix_sim.stream import bundle
from matrix_sim.stream.decode_ahead import DecodeAhead
from matrix_sim.stream.sampler import Emitted, SwinSampler
from matrix_sim.stream.sampler_process import SamplerProcess
from matrix_sim.stream.starter import SourceStarter, starter_for
from matrix_sim.stream.starts import BundleStarts
from matrix_sim.world.base import Frame
from matrix_sim.world.gym_world import is_gym_prompt
from matrix_sim.world.scenes import UnknownPrompt, parse_prompt, scene_catalog

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]


def _no_progress(fraction: float, text: str) -> None:
    pass


class WorldModel:
    def __init__(self, dit: WorldDiT, vae: FrameAutoencoder, prompts: PromptBank, info: bundle.BundleInfo,
                 device: Optional[torch.device] = None, starter: Optional[SourceStarter] = None,
                 decode_ahead: bool = False, sampler_process: bool = False, runtime: Optional[Runtime] = None):
        """decode_ahead: run DiT calls and decodes on two threads that overlap where the device gains from it
        (device.decodes_ahead); frames then follow the actions given to step by when each call starts, not one
        for one: the game's live play, not a scripted run. sampler_process: host the sampler in a child process
        where the device gains from it (device.samples_in_process), on this thread's torch thread count. runtime:
        what runs the DiT's stream call and the decoder (matrix_sim/runtime; default torch)."""
        self.torch_device = device or pick_device()
        self.dit = dit.to(self.torch_device).eval()
        self.vae = vae.to(self.torch_device).eval().to(memory_format=torch.channels_last)   # its fast layout
        self.prompts = prompts
        self.info = info
        self.frame_rate = info.frame_rate
        self.runtime = runtime or TORCH
        self.device = f"{describe(self.torch_device)}, {self.runtime.label}"     # what the client shows on the HUD
        self._decoder = self.runtime.decoder_for(self.vae)
        self.sampler = self._open_sampler(sampler_process and samples_in_process(self.torch_device))
        self._queue: deque[tuple[np.ndarray, Action]] = deque()
        self._ahead = DecodeAhead(self._call, self._frames) if decode_ahead and decodes_ahead(self.torch_device) \
            else None
        self._action = IDLE
        self._embedding: Optional[torch.Tensor] = None
        self.index = -1
        self.prompt = ""
        self.mode = "drive"
        self.starter = starter      # real first frames for reset and prompt switches (stream/starter.py)

    @classmethod
    def from_pretrained(cls, checkpoint_dir: str | Path, progress: Optional[Progress] = None,
                        device: Optional[str] = None, start_from_source: bool = False,
                        stream_overrides: Optional[dict] = None, decode_ahead: bool = False,
                        sampler_process: bool = False, runtime: str = "torch") -> "WorldModel":
        """Load a bundle (see matrix_sim.stream.bundle); progress(fraction, text) feeds a loading screen.
        start_from_source: reset and set_prompt start the scene from source-world frames (the game's choice).
        stream_overrides: inference settings of the stream to change (e.g. {"action_guidance": 3.0});
        decode_ahead, sampler_process: see __init__; runtime: torch, onnx, openvino or auto (matrix_sim/runtime:
        the engines' graphs are exported beside the checkpoint, torch plays where no engine is installed)."""
        progress = progress or _no_progress
        root = bundle.bundle_root(checkpoint_dir)
        info = bundle.read_info(root)
        if stream_overrides:
            info = dataclasses.replace(info, stream=dataclasses.replace(info.stream, **stream_overrides))
        progress(0.1, "loading the world model (DiT)")
        dit = load_model(WorldDiT, root / bundle.DIT_DIR, what="world model")
        progress(0.5, "loading the frame decoder")
        vae = load_autoencoder(root / bundle.VAE_DIR)
        channels = {"world model": dit.config.in_channels, "autoencoder": vae.config.latent_channels,
                    "world_model.json": info.latent_shape[0]}
        if len(set(channels.values())) > 1:
            raise CheckpointError(f"{root}: latent channels disagree: {channels}")
        progress(0.8, "loading prompt embeddings")
        prompts = PromptBank.load(root / bundle.PROMPTS_FILE)
        torch_device = pick_device(device)
        if runtime != "torch":
            progress(0.85, f"preparing the {runtime} runtime")
        chosen = prepare_runtime(runtime, dit, vae, info.stream, info.latent_shape, root, torch_device)
        world = cls(dit, vae, prompts, info, torch_device, decode_ahead=decode_ahead,
                    sampler_process=sampler_process, runtime=chosen)
        if start_from_source:
            world.starter = starter_for(world, starts=BundleStarts.load(root))
        progress(1.0, f"world model ready on {world.device}")
        log.info("world model %s: %.1fM parameters, stream %s, on %s", root,
                 sum(p.numel() for p in dit.parameters()) / 1e6, info.stream, world.device)
        return world

    # ---- World protocol ---------------------------------------------------------------------------
    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the frames it makes: the latents times the autoencoder's scale."""
        scale = 2 ** len(self.vae.config.channels)
        return self.info.latent_shape[1] * scale, self.info.latent_shape[2] * scale

    def reset(self, prompt: str, seed: int) -> Frame:
        """Start a new stream: from the prompt alone, or with a starter from real frames of its scene."""
        if self.starter is not None:
            return self.prime(*self.starter.clip(self.preset_of(prompt), seed), prompt, seed)
        self._restart(prompt, seed)
        return self._next_frame(action_known=False)

    def prime(self, images: np.ndarray, actions: np.ndarray, prompt: str, seed: int) -> Frame:
        """Start from real frames (F, H, W, 3) uint8 and the actions taken at them (F, A), shard convention:
        images[t + 1] is what actions[t] produced, and actions[-1] drives the first generated frame."""
        self.load_context(images, actions, prompt, seed)
        return self._next_frame(action_known=True)

    def load_context(self, images: np.ndarray, actions: np.ndarray, prompt: str, seed: int) -> None:
        """Restart the stream with real frames as its context (as prime), without generating a frame yet:
        for evaluation that drives the sampler itself."""
        if len(images) != len(actions) or len(images) == 0:
            raise ValueError(f"prime needs as many actions as frames (> 0), got {len(images)} and {len(actions)}")
        self._restart(prompt, seed)
        with torch.inference_mode():
            pixels = images_to_tensor(images).to(self.torch_device).contiguous(memory_format=torch.channels_last)
            raw = self.vae.encode(pixels)
        taken = torch.as_tensor(np.asarray(actions, dtype=np.float32))
        produced_by = torch.cat([torch.zeros_like(taken[:1]), taken[:-1]])    # frame t was produced by action t-1
        self.sampler.prime(self.vae.to_model_space(raw), produced_by, self._embedding)
        self._action = Action.from_array(taken[-1].numpy())

    def step(self, action: Action) -> Frame:
        if self._embedding is None:
            raise RuntimeError("WorldModel.step before reset")
        self.steer(action)
        return self._next_frame(action_known=True)

    def steer(self, action: Action) -> None:
        """The player's newest action, from any thread, between steps: the next DiT call takes it. Decoding
        ahead, a call starts while the world thread waits for a block, so live play steers through this."""
        self._action = action

    def set_prompt(self, prompt: str) -> None:
        """Takes effect on the frames still in the window and every frame after; with a starter, the stream
        cuts to real frames of the new scene (the model alone switches slowly: its model card)."""
        if self.starter is not None and self._embedding is not None:
            index = self.index                 # frames keep counting across the cut
            self.prime(*self.starter.clip(self.preset_of(prompt), index + 1), prompt, index + 1)
            self.index = index
            return
        self._condition(prompt)

    def preset_of(self, prompt: str) -> str:
        """The prompt if it is a preset (or a registered Gymnasium environment's, "doom map01"); for free text, the
        preset nearest in meaning among those whose parts its words name ("at noon" is by day)."""
        if is_gym_prompt(prompt):
            return prompt
        try:
            parse_prompt(prompt)
            return prompt
        except UnknownPrompt:
            return self.prompts.nearest(prompt, scene_catalog().presets_named_by(prompt))

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
        if isinstance(self.sampler, SamplerProcess):
            self.sampler.close()
        self._queue.clear()
        if self.starter is not None:
            self.starter.close()

    # ---- internals --------------------------------------------------------------------------------
    def _open_sampler(self, in_process: bool):
        """The stream's sampler, in this process or a child of its own."""
        stream, shape = self.info.stream, self.info.latent_shape
        if in_process:
            return SamplerProcess(self.dit, stream, shape, self.torch_device, self.runtime.hosted(SwinSampler))
        return SwinSampler(self.runtime.stream_model(self.dit), stream, shape, self.torch_device)

    def _restart(self, prompt: str, seed: int) -> None:
        if self._ahead is not None:
            self._ahead.stop()
        self.sampler.reset(seed)
        self._queue.clear()
        self._action = IDLE
        self.index = -1
        self._condition(prompt)

    def _next_frame(self, action_known: bool) -> Frame:
        if not self._queue:
            self._queue.extend(self._ahead.take() if self._ahead is not None else self._frames(self._call()))
        image, action = self._queue.popleft()
        self.index += 1
        return Frame(image=image, index=self.index, prompt=self.prompt, mode=self.mode,
                     action=action if action_known else None)

    def _call(self) -> Emitted:
        """Sampler calls with the newest action and prompt until a block comes out (one, once the window is full)."""
        while True:
            emitted = self.sampler.step(torch.as_tensor(self._action.to_array()), self._embedding)
            if emitted is not None:
                return emitted

    def _frames(self, emitted: Emitted) -> list[tuple[np.ndarray, Action]]:
        """A block's frames and the action each was generated with."""
        return list(zip(self.decode(emitted), map(Action.from_array, emitted.actions.cpu().numpy())))

    @torch.inference_mode()
    def decode(self, emitted: Emitted) -> list[np.ndarray]:
        """An emitted block's latents as (H, W, 3) uint8 images."""
        latents = self.vae.from_model_space(emitted.latents).contiguous(memory_format=torch.channels_last)
        return list(tensor_to_images(self._decoder(latents)))

    def _condition(self, prompt: str) -> None:
        """The DiT sees the embedding of the preset the prompt resolves to: trained on the presets and their
        captions, it draws the scene a held-out paraphrase names more often from that preset's embedding than
        from the paraphrase's own (eval's free_text)."""
        preset = self.preset_of(prompt)
        self._embedding = self.prompts.embed(preset)
        self.prompt = prompt
        self.mode = "walk" if is_gym_prompt(preset) else parse_prompt(preset).mode
