"""The exploration policy's mix of play (off road, spins, reversing, long stops) and the share measure."""
import numpy as np
import pytest

import matrix_sim.data.policy as policy_module
from matrix_sim.data.policy import (BEHAVIOURS, LONG_STOP_FRAMES, SHARE_CATEGORIES, ExplorationPolicy, PolicyWeights,
                                    behaviour_flags, behaviour_shares, simulate_episode)
from matrix_sim.data.record import episode_plan
from matrix_sim.world.base import Frame
from matrix_sim.world.settings import default_world_settings
from matrix_sim.world.terrain import road_centre, road_distance

SETTINGS = default_world_settings()


def simulated(mode, episodes=6, frames=256, seed=1000):
    """(prompt, world seed, actions, poses, behaviour per frame) for a few episodes of the recorder's plan."""
    out = []
    for world_seed, scene in episode_plan(episodes, seed):
        behaviours = []
        act = ExplorationPolicy.act

        def logging_act(self, frame):
            action = act(self, frame)
            behaviours.append(self.behaviour)
            return action

        ExplorationPolicy.act = logging_act
        try:
            actions, poses = simulate_episode(scene.with_mode(mode).prompt, world_seed, frames, SETTINGS)
        finally:
            ExplorationPolicy.act = act
        out.append((scene.with_mode(mode).prompt, world_seed, actions, poses, behaviours))
    return out


@pytest.fixture(scope="module", params=["drive", "walk"])
def episodes(request):
    return request.param, simulated(request.param, episodes=4, frames=512)


def policy_alone(mode, frames=4000):
    """Actions and behaviours of the policy alone on a pose moving along -z: thousands of frames a second."""
    policy = ExplorationPolicy(seed=0, road_seed=0, roads=SETTINGS.roads)
    actions, behaviours = [], []
    for t in range(frames):
        frame = Frame(image=None, index=t, prompt="", mode=mode, pose=np.array([0.0, 0.0, -0.5 * t, 0.0]), speed=5.0)
        actions.append(policy.act(frame).to_array())
        behaviours.append(policy.behaviour)
    return np.asarray(actions), behaviours


def test_same_seed_same_actions():
    prompt = episode_plan(1, 7)[0][1].prompt
    a1, p1 = simulate_episode(prompt, 123, 300, SETTINGS)
    a2, p2 = simulate_episode(prompt, 123, 300, SETTINGS)
    assert a1.tobytes() == a2.tobytes() and p1.tobytes() == p2.tobytes()
    a3, _ = simulate_episode(prompt, 124, 300, SETTINGS)
    assert a1.tobytes() != a3.tobytes()


@pytest.mark.parametrize("mode", ["drive", "walk"])
def test_every_behaviour_occurs(mode):
    actions, behaviours = policy_alone(mode)
    seen = set(behaviours)
    expected = set(BEHAVIOURS) | {"return"}
    if mode == "drive":
        expected -= {"strafe"}
    assert expected <= seen, expected - seen
    forward, turn, strafe, boost, brake = actions.T
    analog = np.abs(actions[np.abs(actions) > 0.01])
    assert len(np.unique(np.round(analog, 2))) > 30 and ((analog > 0.1) & (analog < 0.9)).mean() > 0.1, "analog"


def test_the_mix_covers_off_road_spins_reversing_and_long_stops(episodes):
    mode, eps = episodes
    shares = [behaviour_shares(a, p, seed, SETTINGS.roads) for _, seed, a, p, _ in eps]
    mean = {k: float(np.mean([s[k] for s in shares])) for k in SHARE_CATEGORIES}
    assert mean["on_road_following"] > 0.25, "following the road stays a large share"
    assert mean["on_road_following"] > max(mean["spinning"], mean["reversing"])
    assert mean["off_road"] > 0.1, "leaving the road"
    assert mean["spinning"] > 0.03 and mean["reversing"] > 0.03 and mean["long_stop"] > 0.05
    assert (mean["strafing"] > 0.01) == (mode == "walk")
    forward, turn = np.concatenate([a for _, _, a, _, _ in eps])[:, :2].T
    assert np.sum((forward < -0.1) & (np.abs(turn) > 0.3)) >= 16, "reversing while steering"
    assert np.sum((forward < -0.1) & (np.abs(turn) < 0.2)) >= 16, "reversing straight"


@pytest.mark.parametrize("mode", ["drive", "walk"])
def test_off_road_segments_cross_open_country_and_come_back(mode):
    """Off-road segments (made most of the mix here, so two short episodes hold several): the body leaves the
    road, goes on past the verge into open country, and finds a road again later. In open biomes: in the city
    the buildings beside the roads turn most of them back."""
    weights = PolicyWeights(follow=0.2, turn=0.0, offroad=1.0, spin=0.0, stop=0.0, reverse=0.0, idle=0.0, strafe=0.0)
    back = 0
    open_biomes = [(seed, scene) for seed, scene in episode_plan(12, 1000) if scene.biome in ("grassland", "desert")]
    for world_seed, scene in open_biomes[:2]:
        actions, poses = simulate_episode(scene.with_mode(mode).prompt, world_seed, 512, SETTINGS, weights)
        flags = behaviour_flags(actions, poses, world_seed, SETTINGS.roads)
        off = flags["off_road"]
        assert flags["open_ground"].mean() > 0.05
        away = np.flatnonzero(policy_module._runs(off, 32))          # off the road 2 s or more at a time
        back += int(len(away) > 0 and bool((~off[away[0]:]).any()))
    assert back >= 1


def test_long_stops_of_at_least_48_frames_occur(episodes):
    mode, eps = episodes
    longest = 0
    for _, _, actions, _, _ in eps:
        held = (actions[:, 4] > 0.5) | np.all(actions == 0, axis=1)      # brake or idle held
        run = 0
        for h in held:
            run = run + 1 if h else 0
            longest = max(longest, run)
    assert longest >= LONG_STOP_FRAMES


def test_spinning_in_walk_mode_turns_on_the_spot():
    actions, behaviours = policy_alone("walk")
    spin = np.array([b == "spin" for b in behaviours])
    assert np.sum(spin & (actions[:, 0] == 0) & (np.abs(actions[:, 1]) > 0.6)) >= 64


def test_shares_on_a_hand_made_sequence():
    roads = SETTINGS.roads
    seed = 5
    # 100 frames: 20 following the road, 20 spinning hard right on the spot out in open country, 10 reversing,
    # 50 braked (standing still). Pose t + 1 is where action t took the body.
    along = -np.arange(20) * 0.5                                         # along -z on road 0, 8 m/s
    road_x, _ = road_centre(0.0, along, seed, 0, roads)
    gx, gz = np.meshgrid(np.arange(-160.0, 160.0, 4.0), np.arange(-160.0, 160.0, 4.0))
    far = np.argmax(road_distance(gx, gz, seed, roads))                  # the farthest point from any road
    fx, fz = float(gx.flat[far]), float(gz.flat[far])
    assert road_distance(fx, fz, seed, roads) > roads.width * 0.5 + roads.flatten
    actions = np.zeros((100, 5), dtype=np.float32)
    poses = np.zeros((100, 4), dtype=np.float32)
    actions[:20] = (1.0, 0.1, 0, 0, 0)
    poses[:20, 0], poses[:20, 2] = road_x, along
    actions[20:40] = (0.0, 0.9, 0, 0, 0)
    poses[20:40, 0], poses[20:40, 2], poses[20:40, 3] = fx, fz, np.arange(20) * 0.1
    actions[40:50] = (-1.0, 0.0, 0, 0, 0)
    poses[40:50, 0], poses[40:50, 2], poses[40:50, 3] = fx, fz + (np.arange(10) + 1) * 0.2, 1.9
    actions[50:] = (0, 0, 0, 0, 1.0)
    poses[50:, 0], poses[50:, 2], poses[50:, 3] = fx, fz + 11 * 0.2, 1.9
    shares = behaviour_shares(actions, poses, seed, roads)
    assert shares["on_road_following"] == pytest.approx(0.2)
    assert shares["off_road"] == pytest.approx(0.8)
    assert shares["open_ground"] == pytest.approx(0.8)
    assert shares["turning_hard"] == pytest.approx(0.2)
    assert shares["spinning"] == pytest.approx(0.2)
    assert shares["reversing"] == pytest.approx(0.1)
    assert shares["stopped"] == pytest.approx(0.5)
    assert shares["long_stop"] == pytest.approx(0.5)
    assert shares["strafing"] == 0.0
    # without poses: the road is unknown, the rest from the actions alone
    blind = behaviour_shares(actions)
    assert np.isnan(blind["on_road_following"]) and np.isnan(blind["off_road"])
    assert blind["stopped"] == pytest.approx(0.5) and blind["spinning"] == pytest.approx(0.2)
    # a stop under 48 frames is a stop but not a long one; a 15-frame hard turn is no spin
    short = actions[:60].copy()
    short[25:40] = (0.2, -1.0, 0, 0, 0)
    shares = behaviour_shares(short)
    assert shares["long_stop"] == 0.0 and shares["stopped"] == pytest.approx(10 / 60)
    assert shares["spinning"] == 0.0 and shares["turning_hard"] == pytest.approx(20 / 60)
