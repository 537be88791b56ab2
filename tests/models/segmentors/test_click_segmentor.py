"""ClickSegmentor: P(k), the simulated click sequence, and the gradient step."""
import numpy as np
import pytest
import torch
from scipy import ndimage

import mmhrsam  # noqa: F401
from mmhrsam.registry import MODELS
from mmhrsam.structures import InteractiveDataSample


def build(tiny_parts, **kw):
    return MODELS.build(dict(type='ClickSegmentor', **tiny_parts, **kw))


def edt_with_border(region):
    """Exact distance to the nearest pixel outside ``region`` or outside the image (scipy)."""
    return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def test_number_of_simulated_steps_follows_gamma_power_k(tiny_parts):
    model = build(tiny_parts, gamma=0.6, max_sim_iters=20)
    torch.manual_seed(0)
    k = model.draw_num_iters(40000).numpy()
    expected = 0.6 ** np.arange(21)
    expected /= expected.sum()
    observed = np.bincount(k, minlength=21) / k.size
    assert k.min() >= 0 and k.max() <= 20
    np.testing.assert_allclose(observed[:6], expected[:6], atol=0.01)


def test_clicks_on_a_never_improving_prediction(tiny_parts, monkeypatch):
    """With a decoder that always predicts background, every click is positive, inside the
    object and deeper than max / 1.7 of the remaining object's distance transform; the first
    one is the exact rule's click; samples stop after their own k."""
    model = build(tiny_parts)
    monkeypatch.setattr(model, 'decode', lambda emb, p, l, prev, pv: (torch.full((emb.shape[0], 1, 16, 16), -10.),
                                                                       None))
    target = torch.zeros(2, 64, 64, dtype=torch.bool)
    # 21 x 31 rectangle: distance 11 (to rows 9 and 31) is reached on row 20 for x in 30..40;
    # the row-major tie rule takes x = 30.
    target[0, 10:31, 20:51] = True
    target[1, 40:60, 5:25] = True
    valid = torch.ones_like(target)
    valid[1, :, 15:] = False  # padding / unknown: never clicked
    num_iters = torch.tensor([3, 0])
    torch.manual_seed(1)
    points, labels, prev, prev_valid = model.simulate_clicks(torch.zeros(2, 32, 4, 4), target & valid, valid, num_iters)
    assert points.shape == (2, 4, 2) and labels.shape == (2, 4)
    assert labels[0].tolist() == [1, 1, 1, 1] and labels[1].tolist() == [1, -1, -1, -1]
    assert prev_valid.tolist() == [True, False]
    assert points[0, 0].tolist() == [30.0, 20.0]  # (x, y)
    for b in range(2):
        region = (target[b] & valid[b]).numpy().copy()
        for (x, y), label in zip(points[b].long().tolist(), labels[b].tolist()):
            if label < 0:
                continue
            depth = edt_with_border(region)
            assert region[y, x] and depth[y, x] > depth.max() / 1.7
            region[y, x] = False  # clicked pixels are excluded from later regions


def test_negative_clicks_when_the_prediction_covers_everything(tiny_parts, monkeypatch):
    model = build(tiny_parts)
    monkeypatch.setattr(model, 'decode', lambda emb, p, l, prev, pv: (torch.full((emb.shape[0], 1, 16, 16), 10.),
                                                                      None))
    target = torch.zeros(1, 64, 64, dtype=torch.bool)
    target[0, :8, :8] = True
    points, labels, _, _ = model.simulate_clicks(torch.zeros(1, 32, 4, 4), target, torch.ones_like(target),
                                                 torch.tensor([2]))
    assert labels[0].tolist() == [1, 0, 0]
    for x, y in points[0, 1:].long().tolist():
        assert not target[0, y, x]


def test_loss_trains_backbone_and_head_and_ignores_padding(tiny_parts):
    torch.manual_seed(0)
    model = build(tiny_parts, max_sim_iters=2)
    gt = torch.zeros(2, 1, 64, 64, dtype=torch.uint8)
    gt[0, 0, 8:40, 8:40] = 1
    gt[1, 0, 20:30, 5:60] = 1
    gt[:, :, :, 60:] = 255
    data = [InteractiveDataSample(metainfo=dict(img_id=str(i))) for i in range(2)]
    for s, g in zip(data, gt):
        s.gt_mask = g
    losses = model(torch.randn(2, 3, 64, 64), data, mode='loss')
    assert set(losses) == {'loss_nfl', 'iou', 'num_clicks'}
    assert torch.isfinite(losses['loss_nfl']) and 1 <= losses['num_clicks'] <= 3
    losses['loss_nfl'].backward()
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.head.mask_decoder.iou_token.weight.grad is not None


def test_gt_of_another_size_is_an_error(tiny_parts):
    model = build(tiny_parts)
    s = InteractiveDataSample()
    s.gt_mask = torch.zeros(1, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match='pad both'):
        model(torch.randn(1, 3, 64, 64), [s], mode='loss')


def disk_decoder(size):
    """A deterministic stand-in decoder: +1 within 6 px of a positive click, -1 elsewhere and
    within 3 px of a negative click; at the input resolution (4h = H), so the upsampling is
    the identity. Per sample, so the reference can call it one sample at a time."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')

    def decode(emb, points, labels, prev, prev_valid):
        out = torch.full((points.shape[0], 1, size, size), -1.0)
        for b in range(points.shape[0]):
            for (x, y), label in zip(points[b].tolist(), labels[b].tolist()):
                near = (yy - y) ** 2 + (xx - x) ** 2
                if label == 1:
                    out[b, 0][near <= 36] = 1.0
                elif label == 0:
                    out[b, 0][near <= 9] = -1.0
        return out, None
    return decode


def reference_clicks(decode, target, valid, num_iters, seed):
    """The click rule by hand, one sample and one click at a time (scipy's EDT, squared and
    rounded back to integers; exact at these sizes). The k-th later click takes the
    floor(u * count)-th candidate in row-major order, u the sample's entry of the step's
    batch of torch.rand(B, float64) draws: the documented sampling contract."""
    torch.manual_seed(seed)
    batch = target.shape[0]
    steps = int(num_iters.max())
    draws = [torch.rand(batch, dtype=torch.float64) for _ in range(steps)]
    clicks = []
    for b in range(batch):
        gt, ok = target[b].numpy(), valid[b].numpy()
        clicked, mine = np.zeros_like(gt), []
        pred = np.zeros_like(gt)
        for step in range(steps + 1):
            if step > num_iters[b]:
                mine.append(None)
                continue
            if step > 0:
                pts = torch.tensor([[[c[1], c[0]] if c else [0, 0] for c in mine]]).float()
                lab = torch.tensor([[(1 if c[2] else 0) if c else -1 for c in mine]])
                pred = (decode(None, pts, lab, None, None)[0][0, 0] > 0).numpy() & ok
            fn = np.rint(edt_with_border(gt & ~pred & ok & ~clicked) ** 2).astype(np.int64)
            fp = np.rint(edt_with_border(pred & ~gt & ok & ~clicked) ** 2).astype(np.int64)
            positive = fn.max() > fp.max()
            d2 = fn if positive else fp
            if d2.max() == 0:
                mine.append(None)
                continue
            if step == 0:
                flat = int(np.argmax(d2))
            else:
                cand = np.flatnonzero(289 * d2 > 100 * d2.max())
                flat = int(cand[min(int(draws[step - 1][b] * cand.size), cand.size - 1)])
            y, x = divmod(flat, gt.shape[1])
            clicked[y, x] = True
            mine.append((y, x, bool(positive)))
        clicks.append(mine)
    return clicks


@pytest.mark.parametrize('seed', range(3))
def test_simulated_clicks_equal_a_per_sample_loop(tiny_parts, monkeypatch, seed):
    """The batched simulation (one distance transform for the batch, no host syncs) clicks
    exactly where the per-sample rule does, with random masks, padding, an empty target
    (no click at all) and samples that stop early."""
    size = 48
    model = build(tiny_parts)
    decode = disk_decoder(size)
    monkeypatch.setattr(model, 'decode', decode)
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((size, size))
    target = np.zeros((4, size, size), dtype=bool)
    for b in range(3):
        for _ in range(3):
            cy, cx, r = rng.integers(5, size - 5), rng.integers(5, size - 5), rng.integers(4, 14)
            target[b] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    target[2] ^= rng.random((size, size)) < 0.05  # ragged regions: many distance ties
    valid = np.ones_like(target)
    valid[1, :, 40:] = False
    target, valid = torch.from_numpy(target & valid), torch.from_numpy(valid)  # sample 3: empty
    num_iters = torch.tensor([5, 2, 6, 3])
    torch.manual_seed(100 + seed)
    points, labels, _, prev_valid = model.simulate_clicks(torch.zeros(4, 8, size // 4, size // 4), target,
                                                          valid, num_iters)
    expected = reference_clicks(decode, target, valid, num_iters, 100 + seed)
    got = [[(int(y), int(x), bool(lab)) if lab >= 0 else None
            for (x, y), lab in zip(points[b].long().tolist(), labels[b].tolist())] for b in range(4)]
    assert got == expected
    assert labels[3].tolist() == [-1] * 7 and prev_valid.tolist() == [True, True, True, True]
