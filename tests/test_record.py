"""Recording shards: round trip, byte-for-byte determinism, resume, and one-line errors from the CLI."""
import subprocess
import sys

import numpy as np
import pytest

from matrix_sim.actions import ACTION_FIELDS
from matrix_sim.cli import main
from matrix_sim.data.policy import ExplorationPolicy
from matrix_sim.data.record import episode_plan, record
from matrix_sim.data.shards import iter_episodes, read_episode, read_manifest
from matrix_sim.world.base import Frame
from matrix_sim.world.settings import default_world_settings


def tree_bytes(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_shards_round_trip(tmp_path):
    out = record(tmp_path / "rec", episodes=2, frames=12, seed=3, progress=False)
    manifest = read_manifest(out)
    assert manifest["action_fields"] == list(ACTION_FIELDS)
    assert [e["file"] for e in manifest["episodes"]] == ["episode_000000.npz", "episode_000001.npz"]
    episodes = list(iter_episodes(out))
    assert len(episodes) == 2
    for entry, ep in zip(manifest["episodes"], episodes):
        assert ep.frames.shape == (12, 144, 256, 3) and ep.frames.dtype == np.uint8
        assert ep.actions.shape == (12, len(ACTION_FIELDS)) and ep.poses.shape == (12, 4)
        assert ep.meta["prompt"] == entry["prompt"] and ep.meta["seed"] == entry["seed"]
        assert ep.frames.std() > 5


def test_shards_read_from_many_threads_parse_one_header_at_a_time(tmp_path, monkeypatch):
    """Python 3.11's AST constructor (np.load's header parse) is not thread-safe: eval/probe.py's loading pool
    failed with "AST constructor recursion depth mismatch". Every parse holds the shards' lock; reads from four
    threads at once give the same arrays as one."""
    import ast
    from concurrent.futures import ThreadPoolExecutor

    from matrix_sim.data import shards

    out = record(tmp_path / "rec", episodes=2, frames=6, seed=4, progress=False)
    paths = [out / e["file"] for e in read_manifest(out)["episodes"]]
    held, literal_eval = [], ast.literal_eval
    monkeypatch.setattr(ast, "literal_eval", lambda text: held.append(shards._NPY_PARSE.locked()) or literal_eval(text))
    alone = [read_episode(p) for p in paths]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(read_episode, paths * 20))
    assert len(held) == 4 * 2 * 21 and all(held)        # four arrays a shard, every header parsed under the lock
    for episode, again in zip(alone * 20, together):
        assert np.array_equal(episode.frames, again.frames) and np.array_equal(episode.poses, again.poses)
        assert episode.meta == again.meta


def test_recorded_frames_replay_from_the_recorded_actions(tmp_path, world):
    out = record(tmp_path / "rec", episodes=1, frames=10, seed=5, progress=False)
    ep = next(iter_episodes(out))
    from matrix_sim.actions import Action

    frame = world.reset(ep.meta["prompt"], ep.meta["seed"])
    np.testing.assert_array_equal(frame.image, ep.frames[0])
    for t in range(9):
        frame = world.step(Action.from_array(ep.actions[t]))
        np.testing.assert_array_equal(frame.image, ep.frames[t + 1])


def test_same_arguments_same_bytes_and_resume(tmp_path):
    a = record(tmp_path / "a", episodes=2, frames=8, seed=1, progress=False)
    b = record(tmp_path / "b", episodes=2, frames=8, seed=1, progress=False)
    assert tree_bytes(a) == tree_bytes(b)
    (b / "episode_000001.npz").unlink()
    record(tmp_path / "b", episodes=2, frames=8, seed=1, progress=False)
    assert tree_bytes(a) == tree_bytes(b)


def test_workers_record_the_same_bytes_as_one_process(tmp_path):
    one = record(tmp_path / "one", episodes=3, frames=6, seed=4, progress=False)
    (tmp_path / "many").mkdir()
    record(tmp_path / "many", episodes=3, frames=6, seed=4, progress=False)
    (tmp_path / "many" / "episode_000000.npz").unlink()      # a resumed recording: two episodes left for two workers
    (tmp_path / "many" / "episode_000002.npz").unlink()
    many = record(tmp_path / "many", episodes=3, frames=6, seed=4, progress=False, workers=2)
    assert tree_bytes(one) == tree_bytes(many)


def test_resume_refuses_a_directory_recorded_with_other_arguments(tmp_path):
    record(tmp_path / "a", episodes=1, frames=4, seed=1, progress=False)
    with pytest.raises(ValueError, match="other arguments"):
        record(tmp_path / "a", episodes=1, frames=4, seed=2, progress=False)


def test_resume_refuses_footage_of_another_policy(tmp_path, monkeypatch):
    import matrix_sim.data.record as recorder

    record(tmp_path / "a", episodes=1, frames=4, seed=1, progress=False)
    monkeypatch.setattr(recorder, "POLICY_VERSION", recorder.POLICY_VERSION + 1)
    with pytest.raises(ValueError, match="other arguments"):
        record(tmp_path / "a", episodes=1, frames=4, seed=1, progress=False)


def test_episode_plan_covers_biomes_and_modes():
    plan = episode_plan(24, seed=0)
    assert len({scene.biome for _, scene in plan}) == 6
    assert {scene.mode for _, scene in plan} == {"drive", "walk"}
    assert len({seed for seed, _ in plan}) == 24


@pytest.mark.parametrize("mode", ["drive", "walk"])
def test_policy_uses_a_variety_of_actions(mode):
    settings = default_world_settings()
    policy = ExplorationPolicy(seed=0, road_seed=0, roads=settings.roads)
    actions = []
    for t in range(4000):      # the policy alone, on a moving pose: thousands of frames in a second
        frame = Frame(image=None, index=t, prompt="", mode=mode, pose=np.array([0.0, 0.0, -0.5 * t, 0.0]), speed=5.0)
        actions.append(policy.act(frame).to_array())
    actions = np.asarray(actions)
    forward, turn, strafe, boost, brake = actions.T
    assert (forward > 0.3).mean() > 0.3 and (forward < -0.3).mean() > 0.02
    assert (turn < -0.5).mean() > 0.03 and (turn > 0.5).mean() > 0.03, "sharp turns of both signs"
    gentle = np.abs(turn[np.abs(turn) > 0.05])
    assert ((gentle > 0.05) & (gentle < 0.5)).mean() > 0.05, "gentle turns too"
    assert (brake > 0.5).mean() > 0.02 and (np.abs(actions).sum(axis=1) == 0).mean() > 0.02, "stops and idling"
    assert (boost > 0.5).mean() > 0.02
    assert ((np.abs(strafe) > 0.3).mean() > 0.02) == (mode == "walk")


@pytest.mark.parametrize("argv, message", [
    (["record", "--episodes", "1", "--frames", "-3", "--out", "{tmp}/x"], "positive"),
    (["record", "--episodes", "1", "--frames", "3", "--out", "{tmp}/x", "--prompt", "drive on mars"], "unknown scene"),
    (["record", "--episodes", "1", "--frames", "3", "--out", "{tmp}/file/sub"],
     "cannot create the output folder {tmp}/file/sub: {tmp}/file is a file, not a folder"),
])
def test_bad_arguments_give_one_line_errors(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("not a directory")
    argv = ["-q"] + [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error:") and message.replace("{tmp}", str(tmp_path)) in err
    assert "Traceback" not in err


GOOD_MANIFEST = '{"format": "matrix-sim-shards/1", "frame_rate": 16, "action_fields": [], '


@pytest.mark.parametrize("manifest, message", [
    ("{", "not valid JSON"),
    ('{"format": "other"}', "format 'other', expected 'matrix-sim-shards/1'"),
    ('{"format": "matrix-sim-shards/1", "episodes": []}', "the manifest lacks frame_rate, action_fields"),
    (GOOD_MANIFEST + '"episodes": [{"file": "a.npz"}]}',
     '"episodes" must be a list of entries with "file" and "frames"'),
    (GOOD_MANIFEST + '"episodes": []}', "the manifest lists no episodes to encode"),
])
def test_footage_brought_from_elsewhere_with_a_bad_manifest_is_one_line_error(tmp_path, capsys, manifest, message):
    (tmp_path / "manifest.json").write_text(manifest)
    assert main(["-q", "encode", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and message in err, err


def test_record_command_line_end_to_end(tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run([sys.executable, "-m", "matrix_sim", "-q", "record", "--episodes", "1", "--frames", "5",
                             "--seed", "2", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert read_episode(out / "episode_000000.npz").frames.shape[0] == 5


def test_bench_world_prints_one_json_object(capsys):
    import json

    assert main(["-q", "bench", "world", "--json", "--runs", "2", "--frames", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["width"] == 256 and result["height"] == 144
    assert result["frames_per_s"] > 0 and len(result["runs_frames_per_s"]) == 2
