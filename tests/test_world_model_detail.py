"""The detail term (train/detail.py): it measures how much of a frame's fine structure an estimate holds, and
its gradient gives a softened estimate that structure back; the change term does the same for a frame's change
from the one before, so a still picture's estimate holds still."""
import torch
import torch.nn.functional as F

from matrix_sim.train.detail import change_loss, detail_energy, detail_loss


def frames(seed: int = 0) -> torch.Tensor:
    """(2, 3, 4, 18, 32) latents with smooth gradients and fine structure, like a frame's."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-1, 1, 32)[None, None, None, None, :].expand(2, 3, 4, 18, 32)
    return ramp + 0.5 * torch.randn(2, 3, 4, 18, 32, generator=g)


def blurred(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(0, 1)
    return F.avg_pool2d(flat, 3, stride=1, padding=1, count_include_pad=False).view_as(x)


def test_an_estimate_with_the_frames_detail_scores_nothing_and_a_blurred_one_scores_more_the_blurrier():
    truth = frames()
    levels, mask = torch.full((2, 3), 0.3), torch.ones(2, 3, dtype=torch.bool)
    assert detail_loss(truth, truth, levels, mask, (3, 4)) == 0
    once, twice = blurred(truth), blurred(blurred(truth))
    assert (detail_energy(once, (3, 4)) < detail_energy(truth, (3, 4))).all()
    assert 0 < detail_loss(once, truth, levels, mask, (3, 4)) < detail_loss(twice, truth, levels, mask, (3, 4))
    brighter = truth + 0.7                                   # a change of level is not a change of detail
    assert detail_loss(brighter, truth, levels, mask, (3, 4)) < 1e-10


def test_only_scored_frames_count_and_a_frame_of_pure_noise_not_at_all():
    truth = frames()
    soft = truth.clone()
    soft[:, 0] = blurred(truth[:, 0])                        # only the first frame of each clip loses detail
    mask = torch.ones(2, 3, dtype=torch.bool)
    low = torch.full((2, 3), 0.2)
    assert detail_loss(soft, truth, low, mask, (3, 4)) > 0
    unscored = mask.clone()
    unscored[:, 0] = False
    assert detail_loss(soft, truth, low, unscored, (3, 4)) == 0
    pure_noise = low.clone()
    pure_noise[:, 0] = 1.0
    assert detail_loss(soft, truth, pure_noise, mask, (3, 4)) == 0


def test_descending_the_term_sharpens_a_blurred_estimate_toward_the_frames_detail():
    truth = frames(1)
    softened = 0.6 * blurred(truth) + 0.4 * truth
    estimate = softened.clone().requires_grad_(True)
    levels, mask = torch.full((2, 3), 0.3), torch.ones(2, 3, dtype=torch.bool)
    start = detail_energy(estimate.detach(), (3, 4)).mean() / detail_energy(truth, (3, 4)).mean()
    opt = torch.optim.Adam([estimate], lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        detail_loss(estimate, truth, levels, mask, (3, 4)).backward()
        opt.step()
    end = detail_energy(estimate.detach(), (3, 4)).mean() / detail_energy(truth, (3, 4)).mean()
    assert start < 0.5 and abs(end - 1) < 0.1, (start, end)
    assert abs(estimate.detach().mean() - softened.mean()) < 1e-3     # detail, not a shift of the level


def still(seed: int = 2) -> torch.Tensor:
    """(2, 3, 4, 18, 32): each clip one picture three times, as a stopped player's."""
    return frames(seed)[:, :1].expand(-1, 3, -1, -1, -1).clone()


def test_the_change_term_scores_a_repeated_picture_nothing_and_a_flickering_one_the_more_the_stronger_it_flickers():
    truth = still()
    levels, mask = torch.full((2, 3), 0.3), torch.ones(2, 3, dtype=torch.bool)
    assert change_loss(truth, truth, levels, mask, (3, 4)) == 0
    g = torch.Generator().manual_seed(5)
    grain = torch.randn(truth.shape, generator=g)
    weak, strong = (change_loss(truth + a * grain, truth, levels, mask, (3, 4)) for a in (0.05, 0.2))
    assert 0 < weak < strong
    # the detail term alone cannot see this flicker: its grain has the picture's own amount of detail
    same_detail = still(9)
    assert change_loss(same_detail, truth, levels, mask, (3, 4)) > 10 * detail_loss(same_detail, truth, levels,
                                                                                     mask, (3, 4))


def test_the_change_term_asks_a_moving_picture_to_move_as_much_as_the_real_one():
    truth = frames(3)                                         # every frame a new picture
    levels, mask = torch.full((2, 3), 0.3), torch.ones(2, 3, dtype=torch.bool)
    frozen = truth[:, :1].expand(-1, 3, -1, -1, -1)           # the estimate repeats the first frame
    assert change_loss(frozen, truth, levels, mask, (3, 4)) > 1
    assert change_loss(truth, truth, levels, mask, (3, 4)) == 0
    first_unscored = mask.clone()
    first_unscored[:, 1:] = False                             # frame 0 has no frame before it to change from
    assert change_loss(frozen, truth, levels, first_unscored, (3, 4)) == 0
