"""The source world: a procedural 3-D driving and walking game rendered offscreen with moderngl."""
