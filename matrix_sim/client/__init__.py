"""The game client: plays any World in a window (or headless), with HUD, menu, gamepad and mp4 recording."""
