"""Transforms against independent expectations."""
import numpy as np
import pytest
import torch
from PIL import Image

from dataset_fixtures import captured_warnings, random_rgb, rect_mask
from mmhrsam.datasets.transforms import (PackInteractiveInputs, PhotoMetricDistortion,
                                         RandomFlip, ResizeLongestSide, SampleObject)
from mmhrsam.registry import TRANSFORMS
from mmhrsam.structures import InteractiveDataSample


def results_with(masks, img=None, **extra):
    masks = np.asarray(masks, np.uint8)
    h, w = masks.shape[-2:]
    img = random_rgb(h, w) if img is None else img
    return dict(img=img, gt_masks=masks, instance_ids=[str(10 + i) for i in range(len(masks))],
                img_id='x', img_path='/data/x.jpg', ori_shape=(h, w), img_shape=(h, w), **extra)


def test_transforms_are_registered():
    for name in ('SampleObject', 'ResizeLongestSide', 'PhotoMetricDistortion', 'RandomFlip',
                 'PackInteractiveInputs'):
        assert TRANSFORMS.get(name).__module__ == 'mmhrsam.datasets.transforms'


def test_sample_object_is_uniform_over_usable_objects():
    masks = np.stack([rect_mask(8, 8, 0, 4, 0, 4, 1), rect_mask(8, 8, 0, 1, 0, 2, 1),
                      rect_mask(8, 8, 4, 8, 4, 8, 1), np.full((8, 8), 255, np.uint8)])
    np.random.seed(0)
    picks = [SampleObject(min_area=3)(results_with(masks))['instance_id'] for _ in range(400)]
    counts = {k: picks.count(k) for k in set(picks)}
    assert set(counts) == {'10', '12'}  # 2-px object and ignore-only mask never picked
    assert 150 < counts['10'] < 250
    np.random.seed(0)
    again = [SampleObject(min_area=3)(results_with(masks))['instance_id'] for _ in range(400)]
    assert again == picks  # driven by numpy's global RNG
    out = SampleObject()(results_with(masks[:1]))
    np.testing.assert_array_equal(out['gt_mask'], masks[0])
    assert 'gt_masks' not in out


def test_sample_object_without_usable_object_returns_none_with_warning():
    with captured_warnings() as warnings:
        assert SampleObject(min_area=100)(results_with([rect_mask(8, 8, 0, 4, 0, 4, 1)])) is None
    assert any('/data/x.jpg' in w for w in warnings)


@pytest.mark.parametrize('hw,long_side,expected', [
    ((30, 47), 64, (41, 64)),      # 30 * 64 / 47 = 40.85 -> int(41.35) = 41
    ((100, 60), 32, (32, 19)),     # 60 * 0.32 = 19.2 -> int(19.7) = 19
    ((1000, 3000), 1024, (341, 1024)),  # 1000 * 0.34133 = 341.33 -> 341
    ((7, 7), 16, (16, 16)),
])
def test_resize_longest_side_shape_rule(hw, long_side, expected):
    img = np.zeros(hw + (3,), np.uint8) if hw[0] * hw[1] < 10 ** 6 else None
    if img is None:  # keep the big case cheap: only the size rule
        from mmhrsam.structures.image_geometry import get_preprocess_shape
        assert get_preprocess_shape(*hw, long_side) == expected
        return
    out = ResizeLongestSide(long_side)(results_with(np.zeros((2,) + hw), img=img))
    assert out['img'].shape == expected + (3,) and out['gt_masks'].shape == (2,) + expected
    assert out['img_shape'] == expected
    assert out['scale_factor'] == pytest.approx((expected[0] / hw[0], expected[1] / hw[1]))


def test_resize_masks_nearest_keeps_values_and_image_matches_pil():
    mask = np.zeros((40, 60), np.uint8)
    mask[5:20, 10:40] = 1
    mask[30:35, :] = 255
    img = random_rgb(40, 60, seed=3)
    out = ResizeLongestSide(24)(results_with(mask[None], img=img))
    assert out['img'].shape == (16, 24, 3)
    assert set(np.unique(out['gt_masks'])) == {0, 1, 255}
    ref = np.asarray(Image.fromarray(img).resize((24, 16), Image.BILINEAR))  # antialiased
    assert np.abs(out['img'].astype(int) - ref).max() <= 1
    sampled = ResizeLongestSide(24)(dict(results_with(mask[None], img=img)))['gt_masks'][0]
    rows, cols = (np.arange(16) + 0.5) * 40 / 16, (np.arange(24) + 0.5) * 60 / 24
    np.testing.assert_array_equal(sampled, mask[rows.astype(int)][:, cols.astype(int)])


def test_resize_is_a_no_op_at_the_target_size():
    img, mask = random_rgb(20, 32), rect_mask(20, 32, 1, 5, 1, 5, 1)
    out = ResizeLongestSide(32)(results_with(mask[None], img=img.copy()))
    np.testing.assert_array_equal(out['img'], img)
    assert out['scale_factor'] == (1.0, 1.0) and out['img_shape'] == (20, 32)


@pytest.mark.parametrize('direction,axes',
                         [('horizontal', 1), ('vertical', 0), ('diagonal', (0, 1))])
def test_random_flip_equals_np_flip(direction, axes):
    img, mask = random_rgb(6, 8), rect_mask(6, 8, 0, 2, 0, 3, 1)
    out = RandomFlip(prob=1.0, direction=direction)(results_with(mask[None], img=img.copy(),
                                                                 gt_mask=mask.copy()))
    np.testing.assert_array_equal(out['img'], np.flip(img, axes))
    np.testing.assert_array_equal(out['gt_mask'], np.flip(mask, axes))
    np.testing.assert_array_equal(out['gt_masks'][0], np.flip(mask, axes))
    assert out['flip'] is True and out['flip_direction'] == direction
    kept = RandomFlip(prob=0.0)(results_with(mask[None], img=img.copy()))
    np.testing.assert_array_equal(kept['img'], img)
    assert kept['flip'] is False
    with pytest.raises(ValueError, match='direction'):
        RandomFlip(direction='sideways')


def test_random_flip_frequency_follows_prob():
    np.random.seed(1)
    flips = [RandomFlip(prob=0.3)(results_with(np.zeros((1, 2, 2))))['flip'] for _ in range(500)]
    assert 0.22 < np.mean(flips) < 0.38


def test_photometric_brightness_only_shifts_every_pixel_equally():
    img = np.random.default_rng(0).integers(60, 190, (10, 12, 3), dtype=np.uint8)
    t = PhotoMetricDistortion(brightness_delta=40, contrast_range=(1, 1),
                              saturation_range=(1, 1), hue_delta=0, prob=1.0)
    np.random.seed(3)
    diff = t(results_with(np.zeros((1, 10, 12)), img=img.copy()))['img'].astype(int) - img
    assert diff.min() == diff.max() != 0


def test_photometric_is_seeded_and_changes_colour():
    img = random_rgb(10, 12)
    t = PhotoMetricDistortion(prob=1.0)
    np.random.seed(7)
    a = t(results_with(np.zeros((1, 10, 12)), img=img.copy()))['img']
    np.random.seed(7)
    b = t(results_with(np.zeros((1, 10, 12)), img=img.copy()))['img']
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == img.shape and not np.array_equal(a, img)
    same = PhotoMetricDistortion(prob=0.0)(results_with(np.zeros((1, 10, 12)), img=img.copy()))
    np.testing.assert_array_equal(same['img'], img)


def test_pack_training_sample():
    img, mask = random_rgb(6, 8), rect_mask(6, 8, 1, 3, 1, 3, 1)
    results = results_with(mask[None], img=img, gt_mask=mask, instance_id='10',
                           scale_factor=(2.0, 2.0), flip=True)
    del results['gt_masks']
    embedding = np.zeros((256, 4, 4), np.float16)
    packed = PackInteractiveInputs()(dict(results, teacher_embedding=embedding))
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 6, 8) and inputs.is_contiguous()
    np.testing.assert_array_equal(inputs.numpy(), img.transpose(2, 0, 1))
    assert isinstance(sample, InteractiveDataSample)
    assert sample.gt_mask.dtype == torch.uint8 and sample.gt_mask.shape == (1, 6, 8)
    np.testing.assert_array_equal(sample.gt_mask[0].numpy(), mask)
    assert sample.teacher_embedding.dtype == torch.float16
    assert sample.metainfo == dict(img_id='x', instance_id='10', img_path='/data/x.jpg',
                                   ori_shape=(6, 8), img_shape=(6, 8), scale_factor=(2.0, 2.0),
                                   flip=True)


def test_pack_test_item_and_defaults():
    mask = rect_mask(6, 8, 1, 3, 1, 3, 1)
    results = results_with(mask[None])
    del results['img_shape']
    sample = PackInteractiveInputs()(results)['data_samples']
    assert sample.instance_id == '10'
    assert sample.scale_factor == (1.0, 1.0) and sample.flip is False and sample.img_shape == (6, 8)
    with pytest.raises(ValueError, match='SampleObject'):
        PackInteractiveInputs()(results_with(np.stack([mask, mask])))
