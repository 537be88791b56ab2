"""tools/deployment/export_onnx.py and mmhrsam.apis.onnx_export: the ONNX pair in onnxruntime (CPU)
against the PyTorch predictor.

Tiny HRSAM (through the tool, with a checkpoint and BGR input) and tiny HRSAM++ (through the
API) are exported at a 128 target size. The PyTorch reference is :class:`HRSAMPredictor`
with its default CPU backends (Cycle-scan on the ``chunked`` scan, not the ``export`` scan the
graph is traced with). Tolerance: 1e-4 of the reference's largest magnitude (plus 1e-6);
measured differences are ~1e-6 relative.
"""
import os

import numpy as np
import pytest
import torch

ort = pytest.importorskip('onnxruntime')
onnx = pytest.importorskip('onnx')

from mmhrsam.apis import HRSAMPredictor, map_points  # noqa: E402
from mmhrsam.apis.onnx_export import export_onnx_pair, resize_longest_side  # noqa: E402
from mmhrsam.models.attention import FlexibleLocalAttention  # noqa: E402
from mmhrsam.models.layers import CycleScan  # noqa: E402
from mmhrsam.registry import MODELS  # noqa: E402
from tool_loader import load_tool  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SIZE = 128  # target size: an 8 x 8 embedding grid, windows of 3 leave virtual (padded) slots
WIDTH = 32
BACKBONE = dict(type='HRSAM', embed_dim=WIDTH, depth=4, num_heads=2, num_stages=2, window_size=3,
                attn_cfg=dict(type='KVPadSwinAttention', backend='auto'),
                cycle_scan_cfg=dict(type='CycleScan', d_state=4, scan_backend='auto'), pretrain_grid=6,
                out_channels=WIDTH)
HEAD = dict(type='SAMHead', embed_dim=WIDTH, image_size=SIZE, mask_in_chans=4, decoder_mlp_dim=64,
            decoder_num_heads=2, iou_head_hidden_dim=WIDTH)
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
# (H, W) of test images: portrait and landscape, neither the aspect ratio of the traced example.
IMAGE_SIZES = [(150, 97), (61, 200)]


def build(backbone_cfg, seed, head_cfg=HEAD):
    """Backbone and head with every parameter moved off its initial value (gamma = 1, D = 1, ...)."""
    torch.manual_seed(seed)
    backbone, head = MODELS.build(backbone_cfg).eval(), MODELS.build(head_cfg).eval()
    with torch.no_grad():
        for p in list(backbone.parameters()) + list(head.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    return backbone, head


def load_export_tool():
    return load_tool('tools/deployment/export_onnx.py', 'export_onnx')


@pytest.fixture(scope='module')
def hrsam_pair(tmp_path_factory):
    """Tiny HRSAM exported by the tool from a config file and a checkpoint; the PyTorch predictor."""
    tmp = tmp_path_factory.mktemp('hrsam')
    backbone, head = build(BACKBONE, seed=0)
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state.update({f'head.{k}': v for k, v in head.state_dict().items()})
    torch.save({'state_dict': state}, tmp / 'tiny.pth')
    (tmp / 'tiny.py').write_text(f'model = dict(backbone={BACKBONE!r}, head={HEAD!r})\n'
                                 f'predictor = dict(target_size=1024, bgr_input=True)\n')
    out = tmp / 'onnx'
    result = load_export_tool().main([str(tmp / 'tiny.py'), '--checkpoint', str(tmp / 'tiny.pth'),
                               '--target-size', str(SIZE), '--out', str(out)])
    assert result['paths'] == {'encoder': str(out / 'encoder.onnx'), 'decoder': str(out / 'decoder.onnx')}
    predictor = HRSAMPredictor(backbone, head, target_size=SIZE, bgr_input=True)
    return predictor, result['paths']


@pytest.fixture(scope='module')
def hrsam_plusplus_pair(tmp_path_factory):
    """Tiny HRSAM++ (one stage, 32² anchor map) exported through the API, with a head trained at
    256² whose dense positional encoding is resized to the 8 x 8 grid; the PyTorch predictor."""
    cfg = dict(BACKBONE, type='HRSAMPlusPlus', anchor_size=32, depth=2, num_stages=1,
               ms_cycle_scan_cfg=dict(type='MultiScaleCycleScan', d_state=4, scan_backend='auto'))
    backbone, head = build(cfg, seed=1, head_cfg=dict(HEAD, image_size=256, dense_pe='resize'))
    paths = export_onnx_pair(backbone, head, str(tmp_path_factory.mktemp('hrsam-pp')), SIZE, MEAN, STD)
    return HRSAMPredictor(backbone, head, target_size=SIZE), paths


def session(path):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # quicker to load
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def assert_close(actual, expected):
    expected = np.asarray(expected)
    tol = 1e-4 * float(np.abs(expected).max()) + 1e-6
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol)


def decoder_inputs(embedding, mapped, labels, prev, original_size):
    """SAM's decoder feed: clicks plus the trailing pad point, as segment_anything's ONNX example."""
    return {'image_embeddings': embedding,
            'point_coords': np.concatenate([mapped, [[0, 0]]])[None].astype(np.float32),
            'point_labels': np.concatenate([labels, [-1]])[None].astype(np.float32),
            'mask_input': np.zeros((1, 1, SIZE // 4, SIZE // 4), np.float32) if prev is None else prev.numpy(),
            'has_mask_input': np.array([0.0 if prev is None else 1.0], np.float32),
            'orig_im_size': np.array(original_size, np.float32)}


@pytest.mark.parametrize('pair', ['hrsam_pair', 'hrsam_plusplus_pair'])
def test_pair_matches_pytorch(pair, request):
    predictor, paths = request.getfixturevalue(pair)
    encoder, decoder = session(paths['encoder']), session(paths['decoder'])
    rng = np.random.default_rng(0)
    for height, width in IMAGE_SIZES:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        predictor.set_image(image)
        embedding = encoder.run(None, {'input_image': resize_longest_side(image, SIZE)})[0]
        assert_close(embedding, predictor.features.numpy())
        points = np.stack([rng.integers(0, width, 5), rng.integers(0, height, 5)], axis=1)
        labels = np.array([1, 0, 1, 0, 1])
        prev = None
        for count in (1, 5, 5):  # first click, five clicks with the previous logits, once more
            full, low_res, score = predictor.predict(points[:count], labels[:count], prev, return_logits=True)
            mapped = map_points(points[:count], (height, width), predictor.input_size)
            masks, iou, low = decoder.run(None, decoder_inputs(embedding, mapped, labels[:count], prev,
                                                               (height, width)))
            assert masks.shape == (1, 1, height, width)
            assert_close(masks[0, 0], full)
            assert_close(low, low_res.numpy())
            assert abs(iou.item() - score) <= 1e-4 * abs(score) + 1e-6
            prev = low_res


def test_interface_is_sams(hrsam_pair):
    _, paths = hrsam_pair
    encoder, decoder = onnx.load(paths['encoder']), onnx.load(paths['decoder'])

    def dims(values):
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    assert dims(encoder.graph.input) == {'input_image': ['height', 'width', 3]}
    assert dims(encoder.graph.output) == {'image_embeddings': [1, WIDTH, SIZE // 16, SIZE // 16]}
    # segment_anything's scripts/export_onnx_model.py names and dynamic axes
    assert list(dims(decoder.graph.input)) == ['image_embeddings', 'point_coords', 'point_labels', 'mask_input',
                                               'has_mask_input', 'orig_im_size']
    assert dims(decoder.graph.input)['point_coords'] == [1, 'num_points', 2]
    assert list(dims(decoder.graph.output)) == ['masks', 'iou_predictions', 'low_res_masks']
    # the index maps are constants: nothing sorts or searches at run time; the only loops are
    # the two position loops of each Cycle-scan's scan
    ops = [node.op_type for node in encoder.graph.node]
    assert not set(ops) & {'Scan', 'Sort', 'TopK', 'NonZero', 'If', 'Unique'}, set(ops)
    assert ops.count('Loop') == 2 * 2
    # zero-filled buffers are not stored (compact_uniform_constants)
    for node in encoder.graph.node:
        if node.op_type == 'Constant' and np.prod(node.attribute[0].t.dims) >= 4096:
            values = onnx.numpy_helper.to_array(node.attribute[0].t)
            assert not (values == values.flat[0]).all(), node.name


def test_export_restores_backends(hrsam_plusplus_pair):
    predictor, _ = hrsam_plusplus_pair
    attn = [m for m in predictor.backbone.modules() if isinstance(m, FlexibleLocalAttention)]
    scans = [m for m in predictor.backbone.modules() if isinstance(m, CycleScan)]
    assert len(attn) == 2 and len(scans) == 2
    assert {m.backend for m in attn} == {'auto'} and all('partition' not in vars(m) for m in attn)
    assert {m.scan_backend for m in scans} == {'auto'}
