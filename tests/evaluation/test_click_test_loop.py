"""The click protocol: clicks, coordinate mapping, previous logits, IoU at original size."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from mmhrsam.evaluation.click_test_loop import ClickProtocol


class ConstantModel(nn.Module):
    """Predicts the same logit everywhere and records what the protocol feeds it."""

    def __init__(self, logit=10.0):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.logit, self.calls, self.inputs = logit, [], []

    def extract_feat(self, x):
        self.inputs.append(x)
        return torch.zeros(x.shape[0], 8, x.shape[-2] // 16, x.shape[-1] // 16)

    def decode(self, emb, points, labels, prev=None):
        self.calls.append((points.clone(), labels.clone(), None if prev is None else prev.clone()))
        return torch.full((emb.shape[0], 1, 4 * emb.shape[-2], 4 * emb.shape[-1]), self.logit), None


def rule_click(pred, gt, clicked, valid):
    """The evaluation_protocol.md rule, scipy's exact EDT (1-pixel zero border), strict >, ties negative, row-major."""
    def depth(region):
        return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    fn = depth(gt & ~pred & ~clicked & valid)
    fp = depth(pred & ~gt & ~clicked & valid)
    if fn.max() == 0 and fp.max() == 0:
        return None
    positive = fn.max() > fp.max()
    d = fn if positive else fp
    y, x = np.unravel_index(np.argmax(d), d.shape)
    return int(y), int(x), bool(positive)


def run(model, gt_mask, target=64, clicks=5, clicker='cpu'):
    image = torch.randint(0, 256, (3, *gt_mask.shape[-2:]), dtype=torch.uint8)
    return ClickProtocol(model, target_size=target, max_clicks=clicks, clicker=clicker)(image, gt_mask)


@pytest.mark.parametrize('clicker', ['cpu', 'device'])
def test_clicks_mapping_and_iou_with_a_constant_prediction(clicker):
    height, width = 30, 45
    gt = np.zeros((height, width), bool)
    gt[5:15, 10:30] = True
    model = ConstantModel(10.0)  # everything predicted foreground after the first click
    out = run(model, torch.from_numpy(gt.astype(np.uint8))[None], clicker=clicker)
    # Expected clicks: exact rule on an empty prediction, then on an all-foreground one.
    pred, clicked, valid = np.zeros_like(gt), np.zeros_like(gt), np.ones_like(gt)
    expected = []
    for _ in range(5):
        y, x, positive = rule_click(pred, gt, clicked, valid)
        expected.append((y, x, int(positive)))
        clicked[y, x] = True
        pred = np.ones_like(gt)
    assert out['clicks'].tolist() == [list(c) for c in expected]
    assert expected[0][2] == 1 and all(c[2] == 0 for c in expected[1:])
    np.testing.assert_allclose(out['ious'], gt.sum() / gt.size)
    # Resized to 43 x 64 (long side 64): click (y, x) -> (floor((x + .5) * 64 / 45), floor((y + .5) * 43 / 30)).
    assert model.inputs[0].shape == (1, 3, 64, 64)
    points, labels, prev = model.calls[-1]
    mapped = [[math.floor((x + .5) * 64 / 45), math.floor((y + .5) * 43 / 30)] for y, x, _ in expected]
    assert points[0].tolist() == mapped
    assert labels[0].tolist() == [c[2] for c in expected]
    assert model.calls[0][2] is None and torch.all(prev == 10.0)  # previous logits fed back
    assert out['decoder_times'].shape == (5, ) and out['encoder_time'] > 0


@pytest.mark.parametrize('clicker', ['cpu', 'device'])
def test_ignored_pixels_are_neither_scored_nor_clicked(clicker):
    gt = np.zeros((32, 32), np.uint8)
    gt[4:12, 4:12] = 1
    gt[:, 24:] = 255
    out = run(ConstantModel(10.0), torch.from_numpy(gt)[None], target=32, clicks=4, clicker=clicker)
    np.testing.assert_allclose(out['ious'], 64 / (32 * 24))
    assert all(x < 24 for _, x, _ in out['clicks'].tolist())


def test_a_perfect_prediction_stops_clicking_and_keeps_its_iou():
    gt = np.zeros((32, 32), np.uint8)  # an empty object: background everywhere,
    out = run(ConstantModel(-10.0), torch.from_numpy(gt)[None], target=32, clicks=3)
    # nothing to click at all: IoU of an empty prediction against an empty object is 1
    assert out['clicks'].tolist() == [[-1, -1, -1]] * 3
    np.testing.assert_allclose(out['ious'], 1.0)


def test_bad_options():
    with pytest.raises(ValueError, match='clicker'):
        ClickProtocol(ConstantModel(), clicker='gpu0')
    with pytest.raises(ValueError, match='multiple of 16'):
        ClickProtocol(ConstantModel(), target_size=1000)


def test_metric_size_bins_split_instances_by_original_long_side(tmp_path):
    import json

    from mmhrsam.evaluation import ClickMetric
    metric = ClickMetric(max_clicks=3, size_bins=(100, 200), output_dir=str(tmp_path))
    samples = [dict(ious=[0.5, 0.86, 0.9], ori_shape=(50, 100), img_id='a'),   # bin (0, 100]: NoC@85 = 2
               dict(ious=[0.9, 0.95, 0.95], ori_shape=(150, 120), img_id='b'),  # bin (100, 200]: NoC@85 = 1
               dict(ious=[0.1, 0.2, 0.3], ori_shape=(200, 20), img_id='c')]     # bin (100, 200]: never, 3
    metric.process({}, samples)
    metric.compute_metrics(metric.results)
    by_size = json.loads((tmp_path / 'summary.json').read_text())['by_size']
    assert by_size['(0, 100]']['NoC@85'] == 2 and by_size['(0, 100]']['num_instances'] == 1
    assert by_size['(100, 200]']['NoC@85'] == 2.0 and by_size['(100, 200]']['NoF@95'] == 1
