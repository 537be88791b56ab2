"""Training click sampling (docs/architecture.md): exact first click, later clicks among DT > max/1.7."""
import numpy as np
import pytest
import torch

from click_reference import brute_next_click, brute_regions, random_case, stack_cases
from mmhrsam.evaluation import sample_click, sample_click_torch

# A 33x33 object in a 40x40 image, empty prediction: DT at the centre (20, 20) is 17, and
# DT is the distance to the nearest side, so DT > 17/1.7 = 10 exactly means DT >= 11: the
# central 13x13 square (rows/cols 14..26). The DT = 10 ring (exactly max/1.7) is excluded.
SQUARE = np.zeros((40, 40), dtype=bool)
SQUARE[4:37, 4:37] = True
CANDIDATES = np.zeros_like(SQUARE)
CANDIDATES[14:27, 14:27] = True


def draw_torch(pred, gt, n, seed, clicked=None):
    """n draws in one batched call (the same sample repeated n times)."""
    rep = lambda m: None if m is None else torch.from_numpy(m)[None].expand(n, -1, -1)  # noqa: E731
    gen = torch.Generator().manual_seed(seed)
    return sample_click_torch(rep(pred), rep(gt), rep(clicked), generator=gen)


def test_candidate_set_is_strict_and_covered_torch():
    ys, xs, pos, has = draw_torch(np.zeros_like(SQUARE), SQUARE, 400, seed=0)
    assert has.all() and pos.all()
    assert CANDIDATES[ys.numpy(), xs.numpy()].all()
    hits = set(zip(ys.tolist(), xs.tolist()))
    assert len(hits) > 100  # many distinct pixels, not just the exact-rule centre
    assert min(ys.tolist()) == 14 and max(ys.tolist()) == 26  # the DT = 11 edges are reached
    assert abs(ys.double().mean().item() - 20) < 1.5 and abs(xs.double().mean().item() - 20) < 1.5


def test_candidate_set_is_strict_and_covered_numpy():
    rng = np.random.default_rng(0)
    clicks = [sample_click(np.zeros_like(SQUARE), SQUARE, rng=rng) for _ in range(300)]
    ys, xs, pos = map(np.array, zip(*clicks))
    assert pos.all() and CANDIDATES[ys, xs].all()
    assert len(set(zip(ys, xs))) > 100 and ys.min() == 14 and ys.max() == 26


def test_first_click_is_the_exact_rule():
    rng = np.random.default_rng(3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        cases = [random_case(rng, 16, 20) for _ in range(4)]
        expected = [brute_next_click(*case) for case in cases]
        assert [sample_click(*c[:3], rng=rng, first=True, valid=c[3]) for c in cases] == expected
        ys, xs, pos, has = sample_click_torch(*stack_cases(cases), first=True, generator=gen)
        assert [(int(y), int(x), bool(p)) if h else None
                for y, x, p, h in zip(ys, xs, pos, has)] == expected


@pytest.mark.parametrize('seed', range(3))
def test_random_later_clicks_against_brute_force(seed):
    """Region as the exact rule; pixel inside it with 289 DT^2 > 100 max^2 (brute-force DT)."""
    rng = np.random.default_rng(50 + seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(8):
        h, w = rng.integers(2, 25, 2)
        cases = [random_case(rng, h, w) for _ in range(5)]
        ys, xs, pos, has = sample_click_torch(*stack_cases(cases), generator=gen)
        for b, case in enumerate(cases):
            for click in [(int(ys[b]), int(xs[b]), bool(pos[b])) if has[b] else None,
                          sample_click(*case[:3], rng=rng, valid=case[3])]:
                exact = brute_next_click(*case)
                assert (click is None) == (exact is None)
                if click is None:
                    continue
                assert click[2] == exact[2]  # same region as the exact rule (ties -> FP)
                d2 = brute_regions(*case)[0 if click[2] else 1]
                assert 289 * d2[click[0], click[1]] > 100 * d2.max()


def test_tie_goes_to_negative_region():
    gt = np.zeros((20, 20), dtype=bool)
    pred = np.zeros((20, 20), dtype=bool)
    gt[1:8, 1:8] = True
    pred[11:18, 11:18] = True  # FN and FP both 7x7: equal max DT
    ys, xs, pos, has = draw_torch(pred, gt, 50, seed=1)
    assert has.all() and not pos.any() and (ys >= 11).all() and (xs >= 11).all()
    assert not sample_click(pred, gt, rng=np.random.default_rng(1))[2]


def test_clicked_pixels_are_never_sampled():
    clicked = np.zeros_like(SQUARE)
    clicked[20, 20] = True
    ys, xs, _, _ = draw_torch(np.zeros_like(SQUARE), SQUARE, 300, seed=2, clicked=clicked)
    assert not ((ys == 20) & (xs == 20)).any()


def test_no_error_gives_no_click():
    ys, xs, pos, has = draw_torch(SQUARE, SQUARE, 3, seed=0)
    assert not has.any() and (ys == -1).all() and (xs == -1).all() and not pos.any()
    assert sample_click(SQUARE, SQUARE) is None


def test_seeded_generator_is_deterministic():
    a = draw_torch(np.zeros_like(SQUARE), SQUARE, 64, seed=123)
    b = draw_torch(np.zeros_like(SQUARE), SQUARE, 64, seed=123)
    c = draw_torch(np.zeros_like(SQUARE), SQUARE, 64, seed=124)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not (torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]))
    first = [sample_click(np.zeros_like(SQUARE), SQUARE, rng=np.random.default_rng(5)) for _ in range(2)]
    assert first[0] == first[1]
