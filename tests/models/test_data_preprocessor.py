"""InteractiveDataPreprocessor: normalization and padding as the predictor does."""
import numpy as np
import pytest
import torch

from mmhrsam.structures.image_geometry import preprocess_image
from mmhrsam.models.data_preprocessor import InteractiveDataPreprocessor
from mmhrsam.registry import MODELS
from mmhrsam.structures import InteractiveDataSample

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def sample(h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
    s = InteractiveDataSample(metainfo=dict(img_id=str(seed)))
    s.gt_mask = torch.from_numpy(rng.integers(0, 2, (1, h, w), dtype=np.uint8))
    return img, s


@pytest.mark.parametrize('bgr', [False, True])
def test_matches_predictor_preprocess_for_a_resized_image(bgr):
    img, s = sample(64, 40)  # long side already 64: no resampling on either side
    pre = MODELS.build(dict(type='InteractiveDataPreprocessor', bgr_input=bgr, pad_size=64))
    out = pre(dict(inputs=[img], data_samples=[s]))
    expected, size = preprocess_image(img.permute(1, 2, 0).numpy(), 64, MEAN, STD, bgr)
    assert size == (64, 40)
    assert out['inputs'].dtype == torch.float32 and out['inputs'].shape == (1, 3, 64, 64)
    torch.testing.assert_close(out['inputs'], expected, rtol=0, atol=0)


def test_bgr_flips_channels_but_keeps_statistics_order():
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    img[0] = 200  # red
    out = InteractiveDataPreprocessor(bgr_input=True)(dict(inputs=[img]))['inputs'][0]
    assert out[2, 0, 0] == pytest.approx((200 - MEAN[2]) / STD[2])  # red now last, B stats
    assert out[0, 0, 0] == pytest.approx((0 - MEAN[0]) / STD[0])


def test_batch_padding_to_max_rounded_to_16_with_ignore_masks():
    (a, sa), (b, sb) = sample(30, 40, 1), (sample(50, 20, 2))
    masks = [sa.gt_mask.clone(), sb.gt_mask.clone()]
    out = InteractiveDataPreprocessor()(dict(inputs=[a, b], data_samples=[sa, sb]))
    assert out['inputs'].shape == (2, 3, 64, 48)
    for img, s, mask, x in zip((a, b), out['data_samples'], masks, out['inputs']):
        h, w = img.shape[-2:]
        assert s.pad_shape == (64, 48) and s.gt_mask.shape == (1, 64, 48)
        assert torch.equal(s.gt_mask[:, :h, :w], mask)
        assert (s.gt_mask[:, h:] == 255).all() and (s.gt_mask[:, :, w:] == 255).all()
        assert (x[:, h:] == 0).all() and (x[:, :, w:] == 0).all()  # zeros after normalization
        assert (x[:, :h, :w] != 0).any()


def test_fixed_pad_size_and_too_large_image():
    img, s = sample(20, 30)
    batch = dict(inputs=torch.stack([img]), data_samples=[s])  # a stacked batch works too
    out = InteractiveDataPreprocessor(pad_size=32)(batch)
    assert out['inputs'].shape == (1, 3, 32, 32) and out['data_samples'][0].pad_shape == (32, 32)
    big, sb = sample(20, 40)
    with pytest.raises(ValueError, match='20x40.*32x32'):
        InteractiveDataPreprocessor(pad_size=32)(dict(inputs=[big], data_samples=[sb]))


def test_mask_image_size_mismatch_is_an_error():
    img, s = sample(16, 16)
    s.gt_mask = torch.zeros(1, 8, 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match='gt_mask'):
        InteractiveDataPreprocessor()(dict(inputs=[img], data_samples=[s]))


def test_moves_data_to_the_module_device():
    pre = InteractiveDataPreprocessor(pad_size=16).to('meta')  # a device without values
    img, s = sample(16, 16)
    out = pre(dict(inputs=[img], data_samples=[s]))
    assert out['inputs'].device.type == 'meta' and out['inputs'].shape == (1, 3, 16, 16)
    assert out['data_samples'][0].gt_mask.device.type == 'meta'


def test_invalid_arguments():
    with pytest.raises(ValueError, match='std'):
        InteractiveDataPreprocessor(std=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match='pad_size'):
        InteractiveDataPreprocessor(pad_size=0)
