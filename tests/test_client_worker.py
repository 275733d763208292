"""The world thread: the player's newest action reaches a world that takes actions between steps."""
import numpy as np

from matrix_sim.actions import Action
from matrix_sim.client.worker import LiveSource, ScriptSource, WorldWorker
from matrix_sim.client.worlds import WorldHandle
from matrix_sim.world.base import Frame

WAIT_S = 10.0


class SteeredWorld:
    """A world that records its resets, its steps' actions and what it was steered with between steps (as
    WorldModel.steer)."""

    def __init__(self):
        self.steered, self.resets, self.stepped = [], [], []
        self.index = -1

    def reset(self, prompt, seed):
        self.resets.append(prompt)
        return self._frame()

    def step(self, action):
        self.stepped.append(action)
        return self._frame()

    def set_prompt(self, prompt):
        pass

    def steer(self, action):
        self.steered.append(action)

    def _frame(self):
        self.index += 1
        return Frame(image=np.zeros((4, 4, 3), np.uint8), index=self.index, prompt="p", mode="drive")


def _started(source, world):
    worker = WorldWorker(lambda progress: WorldHandle(world, "model", "test", 16), source, seed=0, paced=True)
    worker.start()
    assert worker.ready.wait(WAIT_S)
    return worker


def test_live_play_steers_the_world_between_steps():
    world, live = SteeredWorld(), LiveSource("drive desert by day")
    worker = _started(live, world)
    try:
        live.set_action(Action(turn=1.0), 0.0)
        assert world.steered == [Action(turn=1.0)]
        assert worker.take(WAIT_S) is not None
    finally:
        worker.stop()
        worker.join(WAIT_S)


def test_a_script_keeps_to_its_ops():
    world, live = SteeredWorld(), LiveSource(None)
    worker = _started(ScriptSource([("reset", "drive desert by day")], then=live), world)
    try:
        live.set_action(Action(turn=1.0), 0.0)
        assert world.steered == [] and live.steer is None      # no steering between the script's steps
        assert all(worker.take(WAIT_S) is not None for _ in range(3))
        assert world.resets == ["drive desert by day"]           # the script's op ran
        assert world.stepped and world.stepped[-1] == Action(turn=1.0)   # then the player takes over
    finally:
        worker.stop()
        worker.join(WAIT_S)
