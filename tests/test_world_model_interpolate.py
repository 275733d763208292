"""Weight interpolation between two world models (`python -m matrix_sim interpolate`)."""
import pytest
import torch

from matrix_sim.cli import main
from matrix_sim.models.checkpoint import CheckpointError
from matrix_sim.models.dit import WorldDiT
from matrix_sim.train.interpolate import interpolate_dits

from wm_helpers import TINY_MODEL, lively_dit, one_thread  # noqa: F401 (autouse fixture)


@pytest.fixture
def two_dits(tmp_path):
    lively_dit(seed=1).save_pretrained(tmp_path / "a")
    lively_dit(seed=2).save_pretrained(tmp_path / "b")
    return tmp_path / "a", tmp_path / "b"


def test_interpolated_weights_lie_on_the_line(two_dits, tmp_path):
    a, b = (WorldDiT.from_pretrained(d).state_dict() for d in two_dits)
    assert main(["interpolate", "--start", str(two_dits[0]), "--end", str(two_dits[1]), "--weight", "0.25",
                 "--out", str(tmp_path / "mix")]) == 0
    mixed = WorldDiT.from_pretrained(tmp_path / "mix").state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)
    for key in a:
        torch.testing.assert_close(mixed[key], 0.75 * a[key] + 0.25 * b[key])
    start = WorldDiT.from_pretrained(interpolate_dits(*two_dits, 0.0, tmp_path / "start")).state_dict()
    assert all(torch.equal(start[k], a[k]) for k in a)


def test_interpolation_refuses_other_shapes_and_weights_off_the_segment(two_dits, tmp_path):
    WorldDiT(**{**TINY_MODEL, "width": 64}).save_pretrained(tmp_path / "wide")
    with pytest.raises(CheckpointError, match="width"):
        interpolate_dits(two_dits[0], tmp_path / "wide", 0.5, tmp_path / "out")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_dits(*two_dits, 1.5, tmp_path / "out")
    assert not (tmp_path / "out").exists()
