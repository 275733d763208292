"""`bench soak`: the recording game loop for a while, per-window fps and memory, the mp4 checked."""
import json
import math
import os
import sys

import torch

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from matrix_sim.eval.bench_soak import bench_soak, memory_now, probe_mp4
from matrix_sim.eval.timed_world import StageClock

from wm_helpers import make_bundle, one_thread  # noqa: F401

STREAM = {"context_frames": 2, "levels": 3, "block_frames": 2, "context_level": 0.02}


def test_short_soak_reports_windows_memory_and_a_complete_mp4(tmp_path):
    bundle = make_bundle(tmp_path / "bundle", stream=STREAM)
    video = tmp_path / "soak.mp4"
    result = bench_soak(20 / 60, checkpoint=bundle, window_s=5, progress=False, video=video, threads=1)
    json.dumps(result)                                     # one JSON object
    windows = result["windows"]
    assert len(windows) == 4 and all(w["full"] for w in windows)
    assert all(w["frames"] > 0 and w["fps"] > 0 for w in windows)
    assert sum(w["frames"] for w in windows) == result["frames"]
    assert all(math.isfinite(w["rss_mb"]) and w["rss_mb"] > 0 for w in windows)
    assert all(w["rss_children_mb"] > 0 for w in windows)        # the sampler's process is counted
    assert math.isfinite(result["rss_growth_mb"]) and result["rss_peak_mb"] >= windows[0]["rss_mb"]
    recording = result["recording"]
    assert recording["valid"] and recording["complete"] and recording["decodes"]
    assert recording["frames"] == recording["frames_written"] == recording["frames_encoded"] >= result["frames"]
    assert recording["path"] == str(video)
    assert set(result["targets_met"]) and result["targets_met"]["mp4 valid and complete"] is True
    assert result["cpu"]["cpu_count"] >= 1


def test_memory_counts_child_processes():
    import subprocess
    import sys

    before = memory_now()
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"])
    try:
        for _ in range(200):
            after = memory_now()
            if after["children"] - before["children"] > 60 << 20:
                break
            import time
            time.sleep(0.05)
        assert after["processes"] > before["processes"] and after["children"] - before["children"] > 60 << 20
    finally:
        child.kill()
        child.wait()


def test_probe_mp4_flags_a_short_recording(tmp_path):
    import numpy as np

    from matrix_sim.client.recorder import Recorder

    recorder = Recorder(tmp_path / "r.mp4", 16, (64, 48))
    for i in range(20):
        recorder.write(np.full((48, 64, 3), i * 10, np.uint8), i)
    recorder.close()
    good = probe_mp4(tmp_path / "r.mp4", 20, 16)
    assert good["complete"] and good["frames"] == 20 and abs(good["duration_s"] - 20 / 16) < 0.1
    short = probe_mp4(tmp_path / "r.mp4", 25, 16)
    assert short["valid"] and not short["complete"] and not short["frames_match"]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert not probe_mp4(broken, 20, 16)["valid"]


def test_an_hour_of_stage_timings_allocates_no_object_a_value():
    """The soak's per-frame figures over an hour (~60 000 frames) must not grow the heap a Python object at a time."""
    clock = StageClock(torch.device("cpu"))
    for _ in range(100):                      # the first values of each stage (the dict entries, the arrays)
        with clock.time("decode", frames=2):
            pass
    before = sys.getallocatedblocks()
    for _ in range(20_000):
        with clock.time("decode", frames=2):
            pass
    assert sys.getallocatedblocks() - before < 1_000
    assert len(clock.times["decode"]) == 20_100
