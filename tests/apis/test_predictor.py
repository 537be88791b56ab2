"""HRSAMPredictor: against segment_anything's SamPredictor, and hand-checked pre/post-processing."""
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor
from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                       TwoWayTransformer)
from torch import nn

from mmhrsam.apis import (HRSAMPredictor, map_points, postprocess_logits, preprocess_image,
                          preprocess_image_original)
from mmhrsam.models.backbones.sam_vit import SAMViT
from mmhrsam.models.heads.sam_head import SAMHead

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
ARCH = dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,))
SIZE = 256  # encoder img_size = predictor target size in the SamPredictor comparisons


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def modules():
    """A small random-weight SAMViT + SAMHead (pos-embed and rel-pos randomized too)."""
    torch.manual_seed(0)
    backbone = SAMViT(arch=ARCH, img_size=SIZE).eval()
    head = SAMHead(image_size=SIZE).eval()
    with torch.no_grad():
        for name, param in backbone.named_parameters():
            if 'pos' in name:  # zero-initialised upstream; make positions matter
                param.normal_(0, 0.5)
    return backbone, head


@pytest.fixture(scope='module')
def upstream_sam(modules):
    """segment_anything's own Sam with the same hyper-parameters and weights."""
    backbone, head = modules
    grid = SIZE // 16
    encoder = ImageEncoderViT(
        img_size=SIZE, patch_size=16, embed_dim=ARCH['embed_dim'], depth=ARCH['depth'],
        num_heads=ARCH['num_heads'], mlp_ratio=4, out_chans=256, qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True,
        global_attn_indexes=ARCH['global_attn_indexes'], window_size=14)
    prompt_encoder = PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid),
                                   input_image_size=(SIZE, SIZE), mask_in_chans=16)
    decoder = MaskDecoder(num_multimask_outputs=3,
                          transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048,
                                                        num_heads=8),
                          transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256)
    sam = Sam(encoder, prompt_encoder, decoder, pixel_mean=list(MEAN), pixel_std=list(STD))
    state = {f'image_encoder.{k}': v for k, v in backbone.state_dict().items()}
    state.update(head.state_dict())  # prompt_encoder.*, mask_decoder.*
    sam.load_state_dict(state, strict=True)
    return sam.eval()


def smooth_image(height, width, seed=0, channels=3):
    """A uint8 image with structure at several scales (random weights still give mixed masks)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, channels, 6, 6, generator=gen)
    fine = torch.rand(1, channels, height, width, generator=gen)
    img = 0.8 * F.interpolate(coarse, (height, width), mode='bilinear', align_corners=False) + 0.2 * fine
    return (img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


class DummyBackbone(nn.Module):
    """Records its inputs and returns a fixed random embedding of the right grid."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.inputs = []

    def forward(self, img):
        self.inputs.append(img.clone())
        gen = torch.Generator().manual_seed(1)
        h, w = img.shape[-2] // 16, img.shape[-1] // 16
        return (torch.randn(1, 256, h, w, generator=gen),)


def manual_input(image_rgb, target, bgr=False):
    """Resize (bilinear, antialias) + normalize + zero-pad, written out independently."""
    height, width = image_rgb.shape[:2]
    scale = target / max(height, width)
    new_h, new_w = int(height * scale + 0.5), int(width * scale + 0.5)
    x = torch.from_numpy(image_rgb.astype(np.float32)).permute(2, 0, 1)[None]
    if (new_h, new_w) != (height, width):
        x = F.interpolate(x, (new_h, new_w), mode='bilinear', align_corners=False, antialias=True)
    if bgr:
        x = x[:, [2, 1, 0]]
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    out = torch.zeros(1, 3, target, target)
    out[..., :new_h, :new_w] = x
    return out


# ---------------------------------------------------------------------- vs segment_anything
@pytest.mark.parametrize('shape', [(200, 256), (256, 176)])
def test_matches_segment_anything(modules, upstream_sam, shape):
    backbone, head = modules
    image = smooth_image(*shape, seed=3)
    predictor = HRSAMPredictor(backbone, head, target_size=SIZE, pixel_mean=MEAN, pixel_std=STD)
    predictor.set_image(image)
    reference = SamPredictor(upstream_sam)
    reference.set_image(image)  # RGB
    torch.testing.assert_close(predictor.features, reference.features, rtol=1e-5, atol=1e-5)

    height, width = shape
    clicks = np.array([[width // 2, height // 3], [width // 5, height - 7], [width - 1, 0]])
    labels = np.array([1, 0, 1])
    logits = None
    for n in range(1, 4):  # three clicks, each feeding back the previous low-res logits
        masks, new_logits, score = predictor.predict(clicks[:n], labels[:n], logits)
        ref_masks, ref_iou, ref_low = reference.predict(
            clicks[:n], labels[:n], mask_input=None if logits is None else logits[0].numpy(),
            multimask_output=False)
        assert masks.shape == shape and masks.dtype == np.bool_
        assert 0 < masks.sum() < masks.size, 'degenerate mask: the comparison would prove little'
        assert (masks != ref_masks[0]).sum() <= 5
        assert score == pytest.approx(float(ref_iou[0]), abs=1e-4)
        torch.testing.assert_close(new_logits[0], torch.from_numpy(ref_low), rtol=1e-4, atol=1e-4)
        logits = new_logits


def test_bgr_input_matches_segment_anything_on_flipped_image(modules, upstream_sam):
    backbone, head = modules
    image = smooth_image(224, 256, seed=4)
    predictor = HRSAMPredictor(backbone, head, target_size=SIZE, bgr_input=True)
    predictor.set_image(image)
    reference = SamPredictor(upstream_sam)
    reference.set_image(np.ascontiguousarray(image[..., ::-1]))  # the model sees BGR
    masks, _, score = predictor.predict([[100, 80]], [1])
    ref_masks, ref_iou, _ = reference.predict(np.array([[100, 80]]), np.array([1]),
                                              multimask_output=False)
    assert (masks != ref_masks[0]).sum() <= 5
    assert score == pytest.approx(float(ref_iou[0]), abs=1e-4)


@pytest.mark.parametrize('input_size,original', [((200, 256), (200, 256)), ((96, 256), (300, 800)),
                                                 ((256, 171), (1000, 667))])
def test_postprocess_equals_sam_postprocess_masks(upstream_sam, input_size, original):
    low = torch.randn(2, 1, 64, 64)
    ours = postprocess_logits(low, input_size, SIZE, original)
    ref = upstream_sam.postprocess_masks(low, input_size, original)
    torch.testing.assert_close(ours, ref)


# ---------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize('shape,target', [((5, 7), 16), ((7, 5), 32), ((40, 24), 16), ((16, 16), 16)])
@pytest.mark.parametrize('bgr', [False, True])
def test_preprocess_by_hand(shape, target, bgr):
    image = smooth_image(*shape, seed=5)
    backbone = DummyBackbone()
    predictor = HRSAMPredictor(backbone, SAMHead(image_size=target), target_size=target, bgr_input=bgr)
    predictor.set_image(image)
    (fed,) = backbone.inputs
    torch.testing.assert_close(fed, manual_input(image, target, bgr))
    x, size = preprocess_image(image, target, MEAN, STD, bgr)
    torch.testing.assert_close(x, fed, rtol=0, atol=0)
    assert predictor.input_size == size and predictor.original_size == shape
    assert max(size) == target


def test_preprocess_pads_with_zeros_after_normalizing():
    image = np.full((8, 16, 3), 200, np.uint8)
    x, size = preprocess_image(image, 16, MEAN, STD)
    assert size == (8, 16)
    assert torch.all(x[..., 8:, :] == 0)
    expected = (200 - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(x[0, :, :8, :].mean(dim=(1, 2)), expected)


def test_bgr_flips_channels():
    image = np.zeros((16, 16, 3), np.uint8)
    image[..., 0] = 255  # pure red
    rgb, _ = preprocess_image(image, 16, MEAN, STD, bgr_input=False)
    bgr, _ = preprocess_image(image, 16, MEAN, STD, bgr_input=True)
    # RGB: channel 0 holds red; BGR: channel 2 does, normalized with the channel-2 statistics.
    assert rgb[0, 0, 0, 0] == pytest.approx((255 - MEAN[0]) / STD[0])
    assert bgr[0, 0, 0, 0] == pytest.approx((0 - MEAN[0]) / STD[0])
    assert bgr[0, 2, 0, 0] == pytest.approx((255 - MEAN[2]) / STD[2])


def _fed_input(image, target=16):
    backbone = DummyBackbone()
    HRSAMPredictor(backbone, SAMHead(image_size=target), target_size=target).set_image(image)
    return backbone.inputs[0]


def test_grayscale_rgba_uint16_float_inputs():
    rgb = smooth_image(12, 10, seed=6)
    gray = rgb[..., 1]
    expected_gray = _fed_input(np.stack([gray] * 3, axis=-1))
    torch.testing.assert_close(_fed_input(gray), expected_gray)
    torch.testing.assert_close(_fed_input(gray[..., None]), expected_gray)
    expected = _fed_input(rgb)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=-1)
    torch.testing.assert_close(_fed_input(rgba), expected)
    torch.testing.assert_close(_fed_input(rgb.astype(np.uint16) * 257), expected)  # exact scale
    torch.testing.assert_close(_fed_input(rgb.astype(np.float32)), expected)
    # uint16 -> uint8 is round(v / 257) (nearest, not v >> 8)
    values16 = np.array([128, 200, 300, 386, 32896, 65535], np.uint16)
    values8 = np.array([0, 1, 1, 2, 128, 255], np.uint8)
    odd = np.broadcast_to(np.resize(values16, (16, 16))[..., None], (16, 16, 3)).copy()
    expected_odd = np.broadcast_to(np.resize(values8, (16, 16))[..., None], (16, 16, 3)).copy()
    torch.testing.assert_close(_fed_input(odd), _fed_input(expected_odd))


@pytest.mark.parametrize('image,error', [
    (np.zeros((8, 8, 2), np.uint8), ValueError),
    (np.zeros((8, 8, 5), np.uint8), ValueError),
    (np.zeros((1, 8, 8, 3), np.uint8), ValueError),
    (np.zeros((0, 8, 3), np.uint8), ValueError),
    (np.zeros((8, 8, 3), np.int32), ValueError),
    (np.zeros((8, 8, 3), bool), ValueError),
    (np.full((8, 8, 3), 256.0, np.float32), ValueError),
    (np.full((8, 8, 3), -1.0, np.float64), ValueError),
    (np.full((8, 8, 3), np.nan, np.float32), ValueError),
    (torch.zeros(8, 8, 3, dtype=torch.uint8), TypeError),
])
def test_bad_images_are_rejected(image, error):
    predictor = HRSAMPredictor(DummyBackbone(), SAMHead(image_size=16), target_size=16)
    with pytest.raises(error):
        predictor.set_image(image)
    assert not predictor.is_image_set


def test_unit_range_float_image_warns():
    with pytest.warns(UserWarning, match=r'\[0, 1\]'):
        _fed_input(np.full((8, 8, 3), 0.5, np.float32))


def test_target_size_must_be_multiple_of_16():
    with pytest.raises(ValueError, match='multiple of 16'):
        HRSAMPredictor(DummyBackbone(), SAMHead(), target_size=1000)
    predictor = HRSAMPredictor(DummyBackbone(), SAMHead(), target_size=1024)
    with pytest.raises(ValueError, match='multiple of 16'):
        predictor.set_image(np.zeros((8, 8, 3), np.uint8), target_size=24)


# ---------------------------------------------------------------------- clicks
def test_map_points_rule():
    # scale 2 (50x100 -> 100x200): pixel x -> floor((x + 0.5) * 2) = 2x + 1
    pts = map_points(np.array([[0, 0], [10, 3], [99, 49]]), (50, 100), (100, 200))
    np.testing.assert_array_equal(pts, [[1, 1], [21, 7], [199, 99]])
    # scale 1/4 (400x800 -> 100x200): x -> floor((x + 0.5) / 4)
    pts = map_points(np.array([[3, 0], [4, 5], [799, 399]]), (400, 800), (100, 200))
    np.testing.assert_array_equal(pts, [[0, 0], [1, 1], [199, 99]])
    # scale 1: integer clicks unchanged; floats go to the pixel of their centre x + 0.5
    pts = map_points(np.array([[5, 7], [5.4, 7.6]]), (20, 30), (20, 30))
    np.testing.assert_array_equal(pts, [[5, 7], [5, 8]])
    # per-axis factors of ResizeLongestSide (300x1000 -> 307x1024 is not a uniform scale)
    pts = map_points(np.array([[999, 299]]), (300, 1000), (307, 1024))
    np.testing.assert_array_equal(pts, [[1023, 306]])


class RecordingHead(nn.Module):
    def __init__(self, head):
        super().__init__()
        self.head = head
        self.calls = []

    def dense_pe(self, grid):
        return self.head.dense_pe(grid)

    def forward(self, features, points, labels, prev_logits=None, prev_valid=None, image_pe=None):
        self.calls.append((points.clone(), labels.clone(), prev_logits))
        return self.head(features, points, labels, prev_logits, prev_valid, image_pe)


def test_clicks_reach_the_head_in_resized_frame():
    head = RecordingHead(SAMHead(image_size=64))
    predictor = HRSAMPredictor(DummyBackbone(), head, target_size=64)
    predictor.set_image(smooth_image(30, 20, seed=7))  # -> 64x43 (scale 64/30, 43/20 per axis)
    assert predictor.input_size == (64, 43)
    masks, logits, score = predictor.predict(np.array([[3, 10], [19.0, 29.0]]), np.array([1, 0]))
    points, labels, prev = head.calls[0]
    # x: floor(3.5 * 43/20) = floor(7.525) = 7, floor(19.5 * 2.15) = 41; y: floor(10.5 * 64/30) = 22,
    # floor(29.5 * 64/30) = 62
    torch.testing.assert_close(points, torch.tensor([[[7.0, 22.0], [41.0, 62.0]]]))
    torch.testing.assert_close(labels, torch.tensor([[1, 0]]))
    assert prev is None
    assert masks.shape == (30, 20) and logits.shape == (1, 1, 16, 16) and isinstance(score, float)


@pytest.mark.parametrize('points,labels', [
    ([[20, 5]], [1]),          # x == W is outside
    ([[-1, 5]], [1]),
    ([[5, 30]], [1]),          # y == H is outside
    ([[5, 5]], [2]),           # bad label
    ([[5, 5], [6, 6]], [1]),   # length mismatch
    ([5, 5], [1]),             # not (N, 2)
    ([[np.nan, 5]], [1]),
])
def test_bad_clicks_are_rejected(points, labels):
    predictor = HRSAMPredictor(DummyBackbone(), SAMHead(image_size=64), target_size=64)
    predictor.set_image(smooth_image(30, 20))
    with pytest.raises(ValueError):
        predictor.predict(points, labels)


# ---------------------------------------------------------------------- caching and prompts
def test_encoder_runs_once_per_image(modules):
    backbone, head = modules
    calls = []
    handle = backbone.register_forward_hook(lambda *args: calls.append(1))
    try:
        predictor = HRSAMPredictor(backbone, head, target_size=SIZE)
        predictor.set_image(smooth_image(200, 256))
        masks1, logits1, _ = predictor.predict([[10, 10]], [1])
        masks2, _, _ = predictor.predict([[10, 10], [100, 50]], [1, 0], logits1)
        assert len(calls) == 1
        predictor.set_image(smooth_image(256, 128, seed=2))
        predictor.predict([[10, 10]], [1])
        assert len(calls) == 2
    finally:
        handle.remove()


def test_prev_logits_is_used(modules):
    backbone, head = modules
    predictor = HRSAMPredictor(backbone, head, target_size=SIZE)
    predictor.set_image(smooth_image(200, 256, seed=8))
    _, logits1, _ = predictor.predict([[128, 100]], [1])
    clicks, labels = [[128, 100], [30, 150]], [1, 0]
    masks_none, low_none, score_none = predictor.predict(clicks, labels)
    masks_prev, low_prev, score_prev = predictor.predict(clicks, labels, logits1)
    assert not torch.allclose(low_none, low_prev)
    assert score_none != score_prev
    # numpy and (256x256-style) 3-D mask inputs are accepted like SamPredictor's
    _, low_np, _ = predictor.predict(clicks, labels, logits1[0].numpy())
    torch.testing.assert_close(low_np, low_prev)
    with pytest.raises(ValueError, match='prev_logits'):
        predictor.predict(clicks, labels, torch.zeros(1, 1, 32, 32))


def test_return_logits(modules):
    backbone, head = modules
    predictor = HRSAMPredictor(backbone, head, target_size=SIZE)
    predictor.set_image(smooth_image(200, 256, seed=9))
    masks, _, _ = predictor.predict([[50, 60]], [1])
    full, _, _ = predictor.predict([[50, 60]], [1], return_logits=True)
    assert full.shape == (200, 256) and full.dtype == np.float32
    np.testing.assert_array_equal(full > 0, masks)


def test_predict_before_set_image_and_reset():
    predictor = HRSAMPredictor(DummyBackbone(), SAMHead(image_size=64), target_size=64)
    with pytest.raises(RuntimeError, match='set_image'):
        predictor.predict([[1, 1]], [1])
    predictor.set_image(smooth_image(30, 20))
    predictor.predict([[1, 1]], [1])
    predictor.reset_image()
    assert not predictor.is_image_set
    with pytest.raises(RuntimeError, match='set_image'):
        predictor.predict([[1, 1]], [1])


def test_target_size_override_per_image():
    backbone = DummyBackbone()
    predictor = HRSAMPredictor(backbone, SAMHead(image_size=64), target_size=64)
    predictor.set_image(smooth_image(30, 20), target_size=32)
    assert backbone.inputs[-1].shape == (1, 3, 32, 32) and predictor.input_size == (32, 21)
    masks, logits, _ = predictor.predict([[3, 4]], [1])
    assert masks.shape == (30, 20) and logits.shape == (1, 1, 8, 8)
    predictor.set_image(smooth_image(30, 20))
    assert backbone.inputs[-1].shape == (1, 3, 64, 64)


# ---------------------------------------------------------------------- from_config
def _config(**predictor):
    cfg = dict(model=dict(type='ClickSegmentor',
                          backbone=dict(type='SAMViT', arch=ARCH, img_size=SIZE),
                          head=dict(type='SAMHead', image_size=SIZE)))
    if predictor:
        cfg['predictor'] = predictor
    return cfg


def _checkpoint(backbone, head):
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state.update({f'head.{k}': v for k, v in head.state_dict().items()})
    return state


def test_from_config(modules, tmp_path):
    backbone, head = modules
    path = tmp_path / 'model.pth'
    torch.save({'state_dict': _checkpoint(backbone, head), 'meta': {}}, path)
    built = HRSAMPredictor.from_config(_config(target_size=SIZE, bgr_input=True), str(path))
    assert built.target_size == SIZE and built.bgr_input and built.device == torch.device('cpu')
    direct = HRSAMPredictor(backbone, head, target_size=SIZE, bgr_input=True)
    image = smooth_image(200, 256, seed=10)
    built.set_image(image)
    direct.set_image(image)
    torch.testing.assert_close(built.predict([[40, 50]], [1])[1], direct.predict([[40, 50]], [1])[1])


def test_from_config_file_and_strict_loading(modules, tmp_path):
    from mmengine.config import Config
    backbone, head = modules
    cfg_path = tmp_path / 'cfg.py'
    Config(_config(target_size=SIZE)).dump(str(cfg_path))
    state = _checkpoint(backbone, head)
    assert HRSAMPredictor.from_config(str(cfg_path), state).target_size == SIZE
    missing = dict(state)
    missing.pop('head.mask_decoder.iou_token.weight')
    with pytest.raises(RuntimeError, match='Missing key'):
        HRSAMPredictor.from_config(_config(), missing)
    with pytest.raises(RuntimeError, match='Unexpected key'):
        HRSAMPredictor.from_config(_config(), dict(state, **{'neck.extra': torch.zeros(1)}))
    with pytest.raises(ValueError, match='unknown predictor options'):
        HRSAMPredictor.from_config(_config(target=SIZE), state)
    # no checkpoint: weights of construction, or init_cfg where one is given
    init_path = tmp_path / 'backbone.pth'
    torch.save({f'backbone.{k}': v for k, v in backbone.state_dict().items()}, init_path)
    cfg = _config()
    cfg['model']['backbone']['init_cfg'] = dict(type='Pretrained', checkpoint=str(init_path),
                                                prefix='backbone.')
    pretrained = HRSAMPredictor.from_config(cfg)
    torch.testing.assert_close(pretrained.backbone.state_dict(), backbone.state_dict())
    with pytest.raises(ValueError, match='backbone'):
        HRSAMPredictor.from_config(dict(model=dict(head=dict(type='SAMHead'))))


# ---------------------------------------------------------------------- released weights
TINY_HRSAM = dict(type='HRSAM', embed_dim=128, depth=2, num_heads=2, num_stages=1, window_size=8,
                  cycle_scan_cfg=dict(type='CycleScan', d_state=8), pretrain_grid=4)


def released_layout(state):
    """The project's backbone.* / head.* state written in the released HRSAM layout (backbone.*
    as is, SAM's prompt encoder under neck.* with pos_embed_layer / point_embeds, the mask
    decoder under decode_head.*), plus the RoPE frequency table the release saved as a buffer:
    theta^(-2i / 32), i < 16, for 64-channel heads, in float32."""
    out = {}
    for key, value in state.items():
        if key.startswith('head.prompt_encoder.'):
            key = 'neck.' + key[len('head.prompt_encoder.'):]
            key = key.replace('neck.pe_layer.', 'neck.pos_embed_layer.')
            key = key.replace('neck.point_embeddings.', 'neck.point_embeds.')
        elif key.startswith('head.mask_decoder.'):
            key = 'decode_head.' + key[len('head.mask_decoder.'):]
        out[key] = value
    out['backbone.rope.freqs'] = torch.tensor([10000 ** (-2 * i / 32) for i in range(16)], dtype=torch.float32)
    return out


@pytest.fixture(scope='module')
def tiny_hrsam_state():
    from mmhrsam.registry import MODELS
    torch.manual_seed(0)
    backbone, head = MODELS.build(TINY_HRSAM), SAMHead(dense_pe='resize')
    return _checkpoint(backbone, head)


def test_released_layout_loads_strictly(tiny_hrsam_state, tmp_path):
    cfg = dict(model=dict(backbone=TINY_HRSAM, head=dict(type='SAMHead', dense_pe='resize')),
               predictor=dict(target_size=64, bgr_input=True))
    released = released_layout(tiny_hrsam_state)
    path = tmp_path / 'released.pth'
    torch.save({'state_dict': released, 'meta': {'iter': 160000}}, path)
    for checkpoint in (released, str(path)):
        predictor = HRSAMPredictor.from_config(cfg, checkpoint)
        loaded = _checkpoint(predictor.backbone, predictor.head)
        assert loaded.keys() == tiny_hrsam_state.keys()
        for key, value in tiny_hrsam_state.items():
            assert torch.equal(loaded[key], value), key
    # A project-layout checkpoint still carrying the table (an older conversion) loads too.
    HRSAMPredictor.from_config(cfg, dict(tiny_hrsam_state, **{'backbone.rope.freqs': released['backbone.rope.freqs']}))
    with pytest.raises(ValueError, match='rotary embedding'):
        HRSAMPredictor.from_config(cfg, dict(released, **{'backbone.rope.freqs': released['backbone.rope.freqs'] * 2}))
    missing = {k: v for k, v in released.items() if k != 'decode_head.iou_token.weight'}
    with pytest.raises(RuntimeError, match='Missing key'):
        HRSAMPredictor.from_config(cfg, missing)
    with pytest.raises(ValueError, match='unknown layout'):
        HRSAMPredictor.from_config(cfg, dict(released, **{'auxiliary_head.w': torch.zeros(1)}))


def test_original_protocol_in_the_predictor():
    """30 x 20 image, target 64: padded to 32 x 32 and resized to 64 x 64 (s = 2); clicks x * 2;
    logits back to 32 x 32 and cropped to 30 x 20."""
    head = RecordingHead(SAMHead(image_size=64))
    backbone = DummyBackbone()
    predictor = HRSAMPredictor(backbone, head, target_size=64, protocol='original')
    image = smooth_image(30, 20, seed=7)
    predictor.set_image(image)
    assert predictor.input_size == (64, 64) and predictor.padded_size == (32, 32)
    x, _, _ = preprocess_image_original(image, 64, MEAN, STD)
    torch.testing.assert_close(backbone.inputs[-1], x, rtol=0, atol=0)
    masks, logits, _ = predictor.predict(np.array([[3, 10], [19.0, 29.0]]), np.array([1, 0]))
    torch.testing.assert_close(head.calls[0][0], torch.tensor([[[6.0, 20.0], [38.0, 58.0]]]))
    full = F.interpolate(logits, (64, 64), mode='bilinear', align_corners=False)  # square = resized
    full = F.interpolate(full, (32, 32), mode='bilinear', align_corners=False)[0, 0, :30, :20]
    np.testing.assert_array_equal(masks, (full > 0).numpy())
    with pytest.raises(ValueError, match='protocol'):
        HRSAMPredictor(backbone, head, protocol='paper')
