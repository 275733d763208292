"""The HUD: what the player needs to judge the stream (rates, latency, action, mode, prompt, recording).

Drawn with pygame into small RGBA panels in canvas pixels (1280x720); the display composites them.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pygame

from matrix_sim.actions import ACTION_FIELDS, Action
from matrix_sim.client.display import CANVAS_SIZE, Panel

MARGIN = 12
PAD = 10
FONT_PX = 22
LINE_PX = 24
PANEL_W = 560
BAR_W, BAR_H = 150, 12
BACKDROP = (0, 0, 0, 150)
TEXT = (235, 235, 235)
DIM = (160, 160, 160)
BAR = (90, 200, 255)
REC_RED = (230, 40, 40)
NOTICE_S = 4.0           # how long a notice stays on screen
RATE_WINDOW_S = 1.0      # fps is counted over this many seconds
LATENCY_SAMPLES = 16
SIGNED = {"forward", "turn", "strafe"}


class RateMeter:
    """Events per second over the last RATE_WINDOW_S."""

    def __init__(self):
        self._times: deque = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)

    def rate(self, now: float) -> float:
        while self._times and self._times[0] < now - RATE_WINDOW_S:
            self._times.popleft()
        return len(self._times) / RATE_WINDOW_S


@dataclass
class HudState:
    generated: RateMeter = field(default_factory=RateMeter)
    displayed: RateMeter = field(default_factory=RateMeter)
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    notice: str = ""
    notice_until: float = 0.0

    def say(self, text: str, now: float) -> None:
        self.notice, self.notice_until = text, now + NOTICE_S

    @property
    def latency_ms(self) -> float:
        return 1000 * sum(self.latencies) / len(self.latencies) if self.latencies else 0.0


def font(size: int = FONT_PX) -> pygame.font.Font:
    if not pygame.font.get_init():
        pygame.font.init()
    return pygame.font.Font(None, size)


def panel(surface: pygame.Surface, pos: tuple[int, int], key=None) -> Panel:
    return Panel(pygame.image.tobytes(surface, "RGBA"), surface.get_size(), pos, key)


class Hud:
    def __init__(self):
        self.font = font()
        self.visible = True

    def panels(self, state: HudState, *, device: str, upscaler: str, inputs: str, mode: str, prompt: str,
               action: Action, recording_s: float | None, now: float) -> list[Panel]:
        out = []
        if self.visible:
            lines = [f"generated {state.generated.rate(now):4.1f} fps   displayed {state.displayed.rate(now):4.1f} fps"
                     f"   latency {state.latency_ms:3.0f} ms",
                     f"{device}   upscaler {upscaler}",
                     f"mode {mode}   input {inputs}",
                     f"prompt: {prompt}"]
            out.append(self._status(lines, action))
        if recording_s is not None:
            out.append(self._recording(recording_s))
        if state.notice and now < state.notice_until:
            out.append(self._notice(state.notice))
        return out

    def _status(self, lines: list[str], action: Action) -> Panel:
        rows = len(lines) + len(ACTION_FIELDS)
        surf = pygame.Surface((PANEL_W, 2 * PAD + rows * LINE_PX), pygame.SRCALPHA)
        surf.fill(BACKDROP)
        y = PAD
        for line in lines:
            surf.blit(self.font.render(line, True, TEXT), (PAD, y))
            y += LINE_PX
        for name in ACTION_FIELDS:
            value = getattr(action, name)
            surf.blit(self.font.render(f"{name:8s} {value:+.2f}", True, DIM), (PAD, y))
            left = PAD + PANEL_W // 3
            pygame.draw.rect(surf, DIM, (left, y + 4, BAR_W, BAR_H), 1)
            if name in SIGNED:
                mid = left + BAR_W // 2
                width = round(value * BAR_W / 2)
                pygame.draw.rect(surf, BAR, (min(mid, mid + width), y + 4, abs(width), BAR_H))
            else:
                pygame.draw.rect(surf, BAR, (left, y + 4, round(value * BAR_W), BAR_H))
            y += LINE_PX
        return panel(surf, (MARGIN, MARGIN), key=(tuple(lines), action))

    def _recording(self, seconds: float) -> Panel:
        minutes, secs = divmod(int(seconds), 60)
        text = self.font.render(f"REC {minutes:02d}:{secs:02d}", True, TEXT)
        surf = pygame.Surface((text.get_width() + 3 * PAD + LINE_PX // 2, LINE_PX + PAD), pygame.SRCALPHA)
        surf.fill(BACKDROP)
        pygame.draw.circle(surf, REC_RED, (PAD + LINE_PX // 4, surf.get_height() // 2), LINE_PX // 4)
        surf.blit(text, (2 * PAD + LINE_PX // 2, PAD // 2 + 2))
        return panel(surf, (CANVAS_SIZE[0] - surf.get_width() - MARGIN, MARGIN), key=("rec", minutes, secs))

    def _notice(self, text: str) -> Panel:
        rendered = self.font.render(text, True, TEXT)
        surf = pygame.Surface((min(CANVAS_SIZE[0] - 2 * MARGIN, rendered.get_width() + 2 * PAD), LINE_PX + PAD),
                              pygame.SRCALPHA)
        surf.fill(BACKDROP)
        surf.blit(rendered, (PAD, PAD // 2 + 2))
        return panel(surf, ((CANVAS_SIZE[0] - surf.get_width()) // 2, CANVAS_SIZE[1] - surf.get_height() - MARGIN),
                     key=("notice", text))


def loading_panel(fraction: float, text: str) -> Panel:
    """The loading screen: what is loading and a progress bar, centred."""
    surf = pygame.Surface((PANEL_W, 4 * LINE_PX), pygame.SRCALPHA)
    surf.fill(BACKDROP)
    surf.blit(font(2 * FONT_PX).render("loading", True, TEXT), (PAD, PAD))
    surf.blit(font().render(text, True, DIM), (PAD, PAD + 2 * LINE_PX))
    pygame.draw.rect(surf, BAR, (PAD, surf.get_height() - PAD, round(fraction * (PANEL_W - 2 * PAD)), PAD // 2))
    return panel(surf, ((CANVAS_SIZE[0] - PANEL_W) // 2, (CANVAS_SIZE[1] - surf.get_height()) // 2),
                 key=("loading", fraction, text))
