"""next_click (numpy) and next_click_torch (batched) against the brute-force rule and hand cases."""
import numpy as np
import pytest
import torch

from click_reference import brute_next_click, brute_regions, random_case, stack_cases
from mmhrsam.evaluation import next_click, next_click_torch

H, W = 12, 15  # canvas of the hand cases


def canvas(*boxes):
    """Bool (H, W) mask with the given half-open (y0, y1, x0, x1) boxes set."""
    mask = np.zeros((H, W), dtype=bool)
    for y0, y1, x0, x1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def hole(y, x):
    mask = np.zeros((H, W), dtype=bool)
    mask[y, x] = True
    return mask


EMPTY = canvas()
# name: (pred, gt, clicked, valid, expected click worked out by hand)
HAND_CASES = {
    # 5x5 object, empty prediction: its centre, 3 pixels from every side.
    'centre': (EMPTY, canvas((2, 7, 3, 8)), None, None, (4, 5, True)),
    # 5x9 object: row 4, x = 5..9 are all at distance 3; row-major picks x = 5
    # (the middle x = 7 or the last x = 9 would be other rules).
    'row_tie': (EMPTY, canvas((2, 7, 3, 12)), None, None, (4, 5, True)),
    # Two 3x3 FN squares with equal centres (2, 12) and (8, 2): the upper one wins even
    # though its x is larger (a column-major rule would pick (8, 2)).
    'two_squares': (EMPTY, canvas((1, 4, 11, 14), (7, 10, 1, 4)), None, None, (2, 12, True)),
    # FN 5x5 and FP 5x5 (both max DT 3): the tie goes to the negative click.
    'fn_fp_tie': (canvas((6, 11, 8, 13)), canvas((1, 6, 1, 6)), None, None, (8, 10, False)),
    # FN 5x5 (max DT 3) vs FP 3x3 (max DT 2): strictly larger, positive.
    'fn_wins': (canvas((7, 10, 9, 12)), canvas((1, 6, 1, 6)), None, None, (3, 3, True)),
    # FN 3x3 vs FP 5x5: negative at the FP centre.
    'fp_wins': (canvas((1, 6, 1, 6)), canvas((7, 10, 9, 12)), None, None, (3, 3, False)),
    # Object of the 3 leftmost columns: the image edge is boundary, so the best pixels are
    # at distance 2 (column 1, rows 1..10) -> (1, 1); without the border, column 0 would win.
    'image_edge': (EMPTY, canvas((0, H, 0, 3)), None, None, (1, 1, True)),
    # 5x9 object with (5, 5) clicked: the clicked pixel is boundary too, so on row 5 the
    # distances are 0, 1, 2, 3, 3 (x = 5..9) and the click moves to (5, 8). (Only zeroing
    # the clicked pixel's own DT, RITM-style, would give (5, 6).)
    'clicked_is_boundary': (EMPTY, canvas((3, 8, 3, 12)), hole(5, 5), None, (5, 8, True)),
    # 7x7 object (rows/cols 2..8), valid only from column 5: the region is 7x4, invalid
    # column 4 acts as boundary, max DT 2 at rows 3..7, cols 6..7 -> (3, 6).
    'valid': (EMPTY, canvas((2, 9, 2, 9)), None, canvas((0, H, 5, W)), (3, 6, True)),
    'both_empty': (EMPTY, EMPTY, None, None, None),
    'perfect': (canvas((2, 9, 2, 9)), canvas((2, 9, 2, 9)), None, None, None),
    # The only error pixel is clicked already: nothing left.
    'all_clicked': (EMPTY, hole(3, 3), hole(3, 3), None, None),
    'all_invalid': (EMPTY, canvas((2, 9, 2, 9)), None, EMPTY, None),
}


@pytest.mark.parametrize('name', HAND_CASES)
def test_hand_cases_numpy(name):
    pred, gt, clicked, valid, expected = HAND_CASES[name]
    assert brute_next_click(pred, gt, clicked, valid) == expected  # the hand values are right
    click = next_click(pred, gt, clicked, valid=valid)
    assert click == expected
    if click is not None:
        assert all(type(v) is t for v, t in zip(click, (int, int, bool)))


def torch_clicks(cases):
    """next_click_torch on a batch of (pred, gt, clicked, valid), as a list of clicks."""
    ys, xs, pos, has = next_click_torch(*stack_cases(cases))
    for t in (ys, xs):
        assert t.dtype == torch.int64
    assert pos.dtype == torch.bool and has.dtype == torch.bool
    assert ((ys == -1) == ~has).all() and not (pos & ~has).any()
    return [(int(y), int(x), bool(p)) if h else None for y, x, p, h in zip(ys, xs, pos, has)]


def test_hand_cases_torch_one_batch():
    """All hand cases in one batch: samples must not influence each other."""
    cases = [c[:4] for c in HAND_CASES.values()]
    assert torch_clicks(cases) == [c[4] for c in HAND_CASES.values()]
    # ... and the same one at a time, reversed order.
    for case in reversed(list(HAND_CASES.values())):
        assert torch_clicks([case[:4]]) == [case[4]]


@pytest.mark.parametrize('seed', range(5))
def test_random_against_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    for _ in range(8):
        h, w = rng.integers(1, 25, 2)
        cases = [random_case(rng, h, w) for _ in range(int(rng.integers(2, 7)))]
        expected = [brute_next_click(*case) for case in cases]
        assert [next_click(p, g, c, valid=v) for p, g, c, v in cases] == expected
        assert torch_clicks(cases) == expected


def test_random_cases_cover_all_outcomes():
    """The random generator yields positive, negative and no clicks, and often several
    maximal pixels (so the random comparisons exercise the tie rule too)."""
    rng = np.random.default_rng(7)
    outcomes, ties = set(), 0
    for _ in range(200):
        case = random_case(rng, *rng.integers(1, 25, 2))
        click = brute_next_click(*case)
        outcomes.add(None if click is None else click[2])
        if click is not None:
            d2 = brute_regions(*case)[0 if click[2] else 1]
            ties += int((d2 == d2.max()).sum() > 1)
    assert outcomes == {None, True, False}
    assert ties > 50


def test_torch_bool_like_inputs_and_shape_errors():
    gt = torch.from_numpy(canvas((2, 7, 3, 8)))[None]
    ys, xs, pos, has = next_click_torch(torch.zeros_like(gt, dtype=torch.uint8), gt.to(torch.uint8))
    assert (ys.item(), xs.item(), pos.item(), has.item()) == (4, 5, True, True)
    with pytest.raises(ValueError):
        next_click_torch(torch.zeros(1, 5, 5, dtype=torch.bool), torch.zeros(1, 5, 6, dtype=torch.bool))
    with pytest.raises(ValueError):
        next_click_torch(torch.zeros(5, 5, dtype=torch.bool), torch.zeros(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError):
        next_click(np.zeros((5, 5), bool), np.zeros((5, 6), bool))


def test_import_paths():
    """The public names live in ``mmhrsam.evaluation``."""
    import mmhrsam.evaluation as evaluation
    assert evaluation.next_click_torch is next_click_torch and evaluation.next_click is next_click