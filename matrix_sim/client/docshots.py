"""Regenerate docs/client_*.png from the real game window (F12 screenshots), driven by injected keys.

    xvfb-run -a -s "-screen 0 1280x720x24" env SDL_VIDEODRIVER=x11 python -m matrix_sim.client.docshots
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import pygame

from matrix_sim.client.game import Game
from matrix_sim.client.options import Options
DOCS = Path("docs")          # run from the repository folder
WARMUP_FRAMES = 24        # let the car get going before the first picture


def _frames(game: Game, n: int) -> None:
    start = game.latest.number if game.latest else -1
    while (game.latest.number if game.latest else -1) < start + n:
        game.tick()
    game.tick()


def _keys(game: Game, *keys: int, down: bool = True) -> None:
    for key in keys:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN if down else pygame.KEYUP, key=key, mod=0))
        game.tick()


def _shot(game: Game, name: str) -> None:
    _keys(game, pygame.K_F12)
    shutil.copy(game.last_screenshot, DOCS / f"client_{name}.png")


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        game = Game(Options(world="engine", prompt="drive coast at sunset", screenshots_dir=Path(tmp),
                            recordings_dir=Path(tmp)))
        game.start()
        try:
            _keys(game, pygame.K_w, pygame.K_d)
            _frames(game, WARMUP_FRAMES)
            _shot(game, "drive")
            _keys(game, pygame.K_r)
            _frames(game, WARMUP_FRAMES)
            _shot(game, "recording")
            _keys(game, pygame.K_r, pygame.K_d)
            _keys(game, pygame.K_d, down=False)
            game.set_prompt("walk forest by day", 0.0)
            _frames(game, WARMUP_FRAMES)
            _shot(game, "walk")
            _keys(game, pygame.K_w, down=False)
            _keys(game, pygame.K_ESCAPE, pygame.K_DOWN, pygame.K_RETURN, pygame.K_DOWN, pygame.K_DOWN)
            game.tick()
            _shot(game, "menu")
        finally:
            game.close()


if __name__ == "__main__":
    main()
