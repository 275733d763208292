"""The in-game menu: resume, scene presets, free-text prompt, drive/walk switch, quit.

It knows nothing of the world: it turns menu commands and typed text into outcomes
("prompt", text) / ("mode", "walk") / ("resume",) / ("quit",) that the game loop carries out.
"""
from __future__ import annotations

import pygame

from matrix_sim.client.display import CANVAS_SIZE
from matrix_sim.client import hud
from matrix_sim.client.hud import BACKDROP, DIM, FONT_PX, LINE_PX, PAD, TEXT, panel
from matrix_sim.world.scenes import MODES

MENU_W = 760
VISIBLE_PRESETS = 14
TITLE_PX = 2 * FONT_PX
MAX_PROMPT_CHARS = 120
HIGHLIGHT = (30, 90, 170)


def other_mode(mode: str) -> str:
    return MODES[1 - MODES.index(mode)]


class Menu:
    def __init__(self, presets: list[str]):
        self.presets = presets
        self.open = False
        self.page = "main"          # "main" | "presets" | "text"
        self.index = 0
        self.text = ""
        self.prompt = ""
        self.mode = MODES[0]

    def items(self) -> list[str]:
        if self.page == "presets":
            return self.presets
        return ["Resume", "Scene presets", "Type a prompt", f"Switch to {other_mode(self.mode)}", "Quit"]

    def show(self, prompt: str, mode: str) -> None:
        self.open, self.page, self.index, self.prompt, self.mode = True, "main", 0, prompt, mode

    def close(self) -> None:
        self.open = False
        pygame.key.stop_text_input()

    def command(self, name: str) -> tuple | None:
        """Handle up/down/select/back; returns an outcome for the game loop, or None."""
        if self.page == "text":
            return self._text_command(name)
        count = len(self.items())
        if name in ("up", "down"):
            self.index = (self.index + (1 if name == "down" else -1)) % count
        elif name == "back":
            if self.page == "main":
                return ("resume",)
            self.page, self.index = "main", 1
        elif name == "select":
            return self._select()
        return None

    def _select(self) -> tuple | None:
        if self.page == "presets":
            return ("prompt", self.presets[self.index])
        choice = self.items()[self.index]
        if choice == "Resume":
            return ("resume",)
        if choice == "Quit":
            return ("quit",)
        if choice == "Scene presets":
            self.page = "presets"
            self.index = self.presets.index(self.prompt) if self.prompt in self.presets else 0
        elif choice == "Type a prompt":
            self.page, self.text = "text", ""
            pygame.key.start_text_input()
        else:
            return ("mode", other_mode(self.mode))
        return None

    def _text_command(self, name: str) -> tuple | None:
        if name == "select" and self.text.strip():
            pygame.key.stop_text_input()
            return ("prompt", self.text.strip())
        if name == "back":
            pygame.key.stop_text_input()
            self.page = "main"
        return None

    def type(self, event: pygame.event.Event) -> None:
        """Free-text entry: TEXTINPUT appends, Backspace deletes."""
        if self.page != "text":
            return
        if event.type == pygame.TEXTINPUT:
            self.text = (self.text + event.text)[:MAX_PROMPT_CHARS]
        elif event.type == pygame.KEYDOWN and event.key == pygame.K_BACKSPACE:
            self.text = self.text[:-1]

    def panel(self):
        font, title = hud.font(), hud.font(TITLE_PX)
        rows = VISIBLE_PRESETS + 3
        surf = pygame.Surface((MENU_W, 2 * PAD + rows * LINE_PX + TITLE_PX), pygame.SRCALPHA)
        surf.fill(BACKDROP)
        heading = {"main": "Menu", "presets": "Scene presets", "text": "Type a prompt (Enter: go, Esc: back)"}
        surf.blit(title.render(heading[self.page], True, TEXT), (PAD, PAD))
        y = PAD + TITLE_PX
        surf.blit(font.render(f"now: {self.prompt}", True, DIM), (PAD, y))
        y += 2 * LINE_PX
        if self.page == "text":
            surf.blit(font.render(f"> {self.text}_", True, TEXT), (PAD, y))
        else:
            items = self.items()
            top = min(max(0, self.index - VISIBLE_PRESETS // 2), max(0, len(items) - VISIBLE_PRESETS))
            for i in range(top, min(len(items), top + VISIBLE_PRESETS)):
                if i == self.index:
                    pygame.draw.rect(surf, HIGHLIGHT, (PAD // 2, y - 2, MENU_W - PAD, LINE_PX))
                surf.blit(font.render(items[i], True, TEXT), (PAD, y))
                y += LINE_PX
        pos = ((CANVAS_SIZE[0] - MENU_W) // 2, (CANVAS_SIZE[1] - surf.get_height()) // 2)
        return panel(surf, pos, key=("menu", self.page, self.index, self.text, self.prompt))
