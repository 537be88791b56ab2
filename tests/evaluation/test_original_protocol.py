"""protocol='original': the original HRSAM implementation's evaluation, step by step, against
hand-computed cases (pre-processing order, click mapping, seeded tie-breaking, the decoder
re-run without error pixels) and its training-click threshold max / (1.7 + float32 eps)."""
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click_reference import brute_sq_dt
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.functional import resize as tv_resize

from mmhrsam.apis import map_points, map_points_original, postprocess_logits_original, preprocess_image_original
from mmhrsam.evaluation import next_click, sample_click, sample_click_torch
from mmhrsam.evaluation.click_test_loop import ClickProtocol
from mmhrsam.structures.clicker import original_click, original_distance_transform

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


# ---------------------------------------------------------------------- pre-processing
def test_normalize_pad_to_32_then_resize_by_hand():
    """41 x 24 constant image, target 32: padded to 64 x 32 first, then halved (no antialias):
    output row i averages padded rows 2i, 2i+1, so row 20 mixes image row 40 with the zero pad."""
    image = np.full((41, 24, 3), 200, np.uint8)
    x, input_size, padded = preprocess_image_original(image, 32, MEAN, STD)
    assert padded == (64, 32) and input_size == (32, 16) and x.shape == (1, 3, 32, 32)
    c = (200 - torch.tensor(MEAN)) / torch.tensor(STD)  # normalized value per channel
    expected = torch.zeros(1, 3, 32, 32)
    expected[0, :, :20, :12] = c.view(3, 1, 1)
    expected[0, :, 20, :12] = c.view(3, 1) / 2
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize('shape,target,bgr', [((37, 50), 64, False), ((100, 61), 48, True), ((64, 32), 64, False)])
def test_preprocess_matches_torchvision_resize_without_antialias(shape, target, bgr):
    """What the original called: torchvision's resize (bilinear, antialias off for tensors)."""
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (*shape, 3), generator=gen, dtype=torch.uint8).numpy()
    x, input_size, padded = preprocess_image_original(image, target, MEAN, STD, bgr_input=bgr)
    ref = torch.from_numpy(image).permute(2, 0, 1).float()
    ref = ref.flip(0) if bgr else ref
    ref = (ref - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    ph, pw = -(-shape[0] // 32) * 32, -(-shape[1] // 32) * 32
    ref = F.pad(ref, (0, pw - shape[1], 0, ph - shape[0]))
    scale = target / max(ph, pw)
    size = [int(ph * scale + 0.5), int(pw * scale + 0.5)]
    ref = tv_resize(ref, size, interpolation=InterpolationMode.BILINEAR, antialias=False)
    assert padded == (ph, pw) and input_size == tuple(size)
    torch.testing.assert_close(x[0, :, :size[0], :size[1]], ref, rtol=0, atol=1e-5)
    assert not x[0, :, size[0]:].any() and not x[0, :, :, size[1]:].any()


def test_click_mapping_by_hand():
    """x * s, no rounding, s from the 32-padded size: 100 x 60 -> 128 x 64 -> 96 x 48 (s = 0.75)."""
    _, input_size, padded = preprocess_image_original(np.zeros((100, 60, 3), np.uint8), 96, MEAN, STD)
    assert (padded, input_size) == ((128, 64), (96, 48))
    mapped = map_points_original(np.array([[59, 99], [0, 0], [10, 3]]), padded, input_size)
    assert mapped.dtype == np.float32
    np.testing.assert_array_equal(mapped, [[44.25, 74.25], [0, 0], [7.5, 2.25]])
    # The project's rule rounds to the pixel holding the mapped centre, with the unpadded scale.
    assert map_points(np.array([[59, 99]]), (100, 60), (96, 58)).tolist() == [[57, 95]]


def test_logits_back_through_the_padded_size():
    """Upsampled to the square, cropped to the resized image, resized to the 32-padded size,
    cropped to the original: a step in the low-res logits lands where that chain puts it."""
    low = torch.full((1, 1, 24, 24), -5.0)
    low[..., :, :6] = 5.0  # left quarter of the 96 x 96 square, i.e. x < 24 at full size
    out = postprocess_logits_original(low, (96, 48), 96, (128, 64), (100, 60))
    assert out.shape == (1, 1, 100, 60)
    # 96 x 48 resized image -> 128 x 64: x < 24 becomes x < 32; the step stays in column 31/32.
    pred = (out[0, 0] > 0).numpy()
    assert pred[:, :32].all() and not pred[:, 32:].any()


# ---------------------------------------------------------------------- clicks
def two_squares():
    gt = np.zeros((9, 17), bool)
    gt[2:7, 2:7] = True
    gt[2:7, 10:15] = True  # the same 5 x 5 square: centres (4, 4) and (4, 12) tie at DT 3
    return gt


def test_ties_are_broken_at_random_with_the_seed():
    gt, empty = two_squares(), np.zeros((9, 17), bool)
    centres = [(4, 4), (4, 12)]  # row-major order of the candidates
    picks = set()
    for seed in range(8):
        rng = random.Random(seed)
        y, x, positive = original_click(empty, gt, None, rng)
        assert positive and (y, x) == random.Random(seed).choice(centres)
        picks.add((y, x))
    assert picks == set(centres)  # both occur; the project's rule always takes the first
    assert next_click(empty, gt)[:2] == (4, 4)
    # One generator for a whole run: consecutive clicks draw consecutive numbers.
    rng, ref = random.Random(42), random.Random(42)
    assert [original_click(empty, gt, None, rng)[:2] for _ in range(6)] == [ref.choice(centres) for _ in range(6)]


def test_original_click_regions_and_no_error():
    gt = np.zeros((12, 15), bool)
    gt[2:9, 3:10] = True
    pred = np.zeros_like(gt)
    pred[2:9, 3:10] = True
    assert original_click(pred, gt, None, random.Random(0)) is None
    pred[0:2, 0:15] = True  # a thin false positive; the object is fully covered: negative click
    y, x, positive = original_click(pred, gt, None, random.Random(0))
    assert not positive and y in (0, 1)


def test_opencv_distances_are_the_exact_ones_to_float32():
    rng = np.random.default_rng(1)
    region = rng.random((30, 40)) > 0.2
    region[:, :3] = False
    np.testing.assert_allclose(original_distance_transform(region), np.sqrt(brute_sq_dt(region)), rtol=3e-7)
    assert not original_distance_transform(np.zeros((5, 5), bool)).any()


# ---------------------------------------------------------------------- the protocol
class ScriptedModel(nn.Module):
    """Decoder outputs scripted per call (low-res logits), recording what it is fed."""

    def __init__(self, outputs):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.outputs, self.calls = list(outputs), []

    def extract_feat(self, x):
        return torch.zeros(1, 8, x.shape[-2] // 16, x.shape[-1] // 16)

    def decode(self, emb, points, labels, prev=None):
        out = self.outputs[min(len(self.calls), len(self.outputs) - 1)]
        self.calls.append((points.clone(), labels.clone(), prev))
        return out.clone(), None


def test_without_error_pixels_the_decoder_runs_again():
    perfect, empty = torch.full((1, 1, 8, 8), -10.0), torch.full((1, 1, 8, 8), -10.0)
    perfect[..., 2:6, 2:6] = 10.0
    # The object is what these logits give on a 32 x 32 image (no resizing at target 32).
    gt = (F.interpolate(perfect, (32, 32), mode='bilinear', align_corners=False)[0] > 0).to(torch.uint8)
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    scripted = [perfect, perfect, empty, perfect]
    original = ScriptedModel(scripted)
    out = ClickProtocol(original, target_size=32, max_clicks=4, clicker='cpu', protocol='original')(image, gt)
    np.testing.assert_array_equal(out['ious'], [1, 1, 0, 1])
    assert [c[0].shape[1] for c in original.calls] == [1, 1, 1, 2]  # same clicks, then a new one
    torch.testing.assert_close(original.calls[1][0], original.calls[0][0], rtol=0, atol=0)
    assert original.calls[1][2] is not None and torch.equal(original.calls[1][2], perfect)
    assert torch.equal(original.calls[2][2], perfect) and torch.equal(original.calls[3][2], empty)
    assert out['clicks'][1].tolist() == [-1, -1, -1] and out['clicks'][3][2] == 1
    # The project's protocol stops decoding and carries the IoU forward.
    exact = ScriptedModel(scripted)
    out = ClickProtocol(exact, target_size=32, max_clicks=4, clicker='cpu')(image, gt)
    np.testing.assert_array_equal(out['ious'], [1, 1, 1, 1])
    assert len(exact.calls) == 1


def test_protocol_seed_reset_and_mapping():
    """Two equal squares: the first click follows random.Random(seed); reset() restarts it;
    the head gets x * s of the 32-padded frame (here 18 x 20 -> 32 x 32 -> 16 x 16, s = 0.5)."""
    gt = np.zeros((18, 20), bool)
    gt[1:6, 1:6] = True
    gt[1:6, 12:17] = True  # centres (3, 3) and (3, 14)
    centres = [(3, 3), (3, 14)]
    mask, image = torch.from_numpy(gt.astype(np.uint8)), torch.zeros(3, 18, 20, dtype=torch.uint8)
    model = ScriptedModel([torch.full((1, 1, 4, 4), -10.0)])
    protocol = ClickProtocol(model, target_size=16, max_clicks=1, clicker='cpu', protocol='original', seed=7)
    ref = random.Random(7)
    for _ in range(3):
        y, x = ref.choice(centres)
        assert protocol(image, mask)['clicks'][0].tolist() == [y, x, 1]
        assert model.calls[-1][0].tolist() == [[[x * 0.5, y * 0.5]]]
    protocol.reset()
    assert tuple(protocol(image, mask)['clicks'][0][:2]) == random.Random(7).choice(centres)


def test_protocol_options():
    model = ScriptedModel([torch.zeros(1, 1, 4, 4)])
    with pytest.raises(ValueError, match='protocol'):
        ClickProtocol(model, protocol='paper')
    with pytest.raises(ValueError, match="clicker='cpu'"):
        ClickProtocol(model, protocol='original', clicker='device')


# ---------------------------------------------------------------------- training threshold
# A 33 x 33 object: DT peaks at 17 in the centre (20, 20); DT = 10 = 17 / 1.7 on the ring of
# rows/cols 13 and 27. The exact rule (DT > max / 1.7) leaves that ring out (rows 14..26); the
# original's float32 max / (1.7 + eps) lies just below 10 and keeps it (rows 13..27).
SQUARE = np.zeros((40, 40), dtype=bool)
SQUARE[4:37, 4:37] = True


@pytest.mark.parametrize('threshold,low,high', [('exact', 14, 26), ('original', 13, 27)])
def test_training_threshold(threshold, low, high):
    n = 600
    rep = torch.from_numpy(SQUARE)[None].expand(n, -1, -1)
    gen = torch.Generator().manual_seed(0)
    ys, xs, pos, has = sample_click_torch(torch.zeros_like(rep), rep, generator=gen, threshold=threshold)
    assert has.all() and pos.all()
    assert (ys.min().item(), ys.max().item(), xs.min().item(), xs.max().item()) == (low, high, low, high)
    rng = np.random.default_rng(0)
    clicks = np.array([sample_click(np.zeros_like(SQUARE), SQUARE, rng=rng, threshold=threshold)[:2]
                       for _ in range(n // 3)])
    assert (clicks.min(), clicks.max()) == (low, high)
    with pytest.raises(ValueError, match='threshold'):
        sample_click(np.zeros_like(SQUARE), SQUARE, threshold='float32')
