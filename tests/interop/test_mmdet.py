"""HRSAM in mmdet: configs/mmdet/ build mmdet's own Mask R-CNN through mmdet's registries with
HRSAM / HRSAM++ and SimpleFeaturePyramid swapped in, train one step on synthetic scenes
(mmdet's DetDataSample / InstanceData / BitmapMasks) and predict."""
import glob
import os

import numpy as np
import pytest
import torch

pytest.importorskip('mmcv.ops', reason='mmdet models need full mmcv (tools/install_mmcv.sh)')
pytest.importorskip('mmdet', reason='needs mmdet (requirements/mmdet.txt)')

from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from mmhrsam.datasets import SyntheticHighResDataset  # noqa: E402
from mmhrsam.utils.checkpoint import save_state_dict  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'mmdet', '*.py')))
HRSAM_CONFIG = os.path.join(ROOT, 'configs', 'mmdet', 'mask-rcnn_hrsam_vit-b_sfp_8xb8-amp-lsj-200e_coco-1024.py')
SIZE = 64  # image side; the tiny HRSAM's 4x4 token grid gives pyramid levels 16 .. 1
WIDTH = 32  # neck and head channels in the tests (the configs use mmdet's 256)
CLASSES = 4  # the configs use COCO's 80


def test_every_config_is_tested():
    assert len(CONFIGS) == 2 and HRSAM_CONFIG in CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_shipped_widths_fit_the_vit_b_backbone(path):
    """The configs as shipped: the neck takes what the full-size backbone gives (built on the
    meta device: no memory, no init cost) and feeds mmdet's heads their 256 channels."""
    from mmdet.registry import MODELS

    cfg = Config.fromfile(path)
    with torch.device('meta'), DefaultScope.overwrite_default_scope('mmdet'):
        backbone = MODELS.build(cfg.model.backbone)
    expected = 2 * 768 if cfg.model.backbone.type == 'mmhrsam.HRSAMPlusPlus' else 768
    assert backbone.stage_channels == expected == cfg.model.neck.in_channels
    assert cfg.model.neck.out_channels == cfg.model.rpn_head.in_channels == 256
    assert cfg.model.neck.num_outs == len(cfg.model.rpn_head.anchor_generator.strides)


def small_mask_rcnn(path, tiny_backbone):
    """The config with a tiny HRSAM, narrow heads, fewer classes and proposals, 64² padding;
    everything else stock."""
    cfg = Config.fromfile(path)
    model = cfg.model
    model.neck.in_channels = tiny_backbone(model.backbone)
    model.neck.out_channels = WIDTH
    model.rpn_head.update(in_channels=WIDTH, feat_channels=WIDTH)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = roi.mask_roi_extractor.out_channels = WIDTH
    roi.bbox_head.update(in_channels=WIDTH, fc_out_channels=64, num_classes=CLASSES)
    roi.mask_head.update(in_channels=WIDTH, conv_out_channels=WIDTH, num_classes=CLASSES)
    for proposals in (model.train_cfg.rpn_proposal, model.test_cfg.rpn):
        proposals.update(nms_pre=200, max_per_img=100)
    model.train_cfg.rcnn.sampler.num = 64
    model.test_cfg.rcnn.score_thr = 0.0  # an untrained model must still return instances
    model.data_preprocessor.batch_augments[0].size = (SIZE, SIZE)
    return cfg


def synthetic_batch():
    """Two synthetic scenes as mmdet inputs: BGR uint8 images, boxes from the masks."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    scenes = SyntheticHighResDataset(num_images=2, image_size=SIZE, max_objects=3, seed=3)
    inputs, samples = [], []
    for i in range(len(scenes)):
        image, masks = scenes.load_image(i), scenes.load_masks(i)  # (H, W, 3) RGB, (N, H, W)
        boxes = []
        for m in masks:  # tight (x0, y0, x1, y1) box, exclusive ends
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        sample = DetDataSample(metainfo=dict(img_id=i, img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                           labels=torch.arange(len(masks)) % CLASSES,
                                           masks=BitmapMasks(masks, SIZE, SIZE))
        inputs.append(torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1))  # mmdet loads BGR
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_mask_rcnn_trains_a_step_and_predicts(path, tiny_backbone):
    from mmdet.registry import MODELS

    cfg = small_mask_rcnn(path, tiny_backbone)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        model.init_weights()
        assert type(model).__name__ == 'MaskRCNN'
        assert type(model.backbone).__name__ == cfg.model.backbone.type.split('.')[-1]
        assert type(model.neck).__name__ == 'SimpleFeaturePyramid'

        data = synthetic_batch()
        feats = model.extract_feat(model.data_preprocessor(data, training=False)['inputs'])
        strides = cfg.model.rpn_head.anchor_generator.strides  # mmdet's own expectation
        assert [tuple(f.shape[-2:]) for f in feats] == [(SIZE // s, SIZE // s) for s in strides]

        optim_wrapper = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01)))
        before = model.backbone.blocks[0].attn.qkv.weight.detach().clone()
        log_vars = model.train_step(data, optim_wrapper)
        for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'):
            assert torch.isfinite(log_vars[key]), key
        assert not torch.equal(model.backbone.blocks[0].attn.qkv.weight, before)  # gradient reached HRSAM

        model.eval()
        with torch.no_grad():
            results = model.test_step(data)
    for result in results:
        pred = result.pred_instances
        assert len(pred) > 0 and pred.masks.shape[1:] == (SIZE, SIZE)
        assert pred.bboxes.min() >= 0 and pred.bboxes.max() <= SIZE


def test_layer_decay_on_mask_rcnn(tiny_backbone):
    """mmhrsam's constructor on mmdet's model: HRSAM's blocks decay, neck and heads do not."""
    from mmdet.registry import MODELS

    cfg = small_mask_rcnn(HRSAM_CONFIG, tiny_backbone)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        optim_wrapper = build_optim_wrapper(model, dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            constructor='mmhrsam.LayerDecayOptimWrapperConstructor', paramwise_cfg=dict(layer_decay_rate=0.7)))
    scale = {id(p): g['lr'] / 1e-4 for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    # 4 blocks: block i has layer id i + 1, lr scale 0.7 ** (4 + 1 - (i + 1)); patch embedding 0.7 ** 5
    assert scale[id(model.backbone.patch_embed.proj.weight)] == pytest.approx(0.7 ** 5)
    assert scale[id(model.backbone.blocks[0].attn.qkv.weight)] == pytest.approx(0.7 ** 4)
    assert scale[id(model.backbone.blocks[3].mlp.fc2.weight)] == pytest.approx(0.7)
    for module in (model.neck, model.rpn_head, model.roi_head):
        assert all(scale[id(p)] == 1.0 for p in module.parameters())


def test_pretrained_prefix_loads_the_backbone_only(tmp_path, tiny_backbone):
    """init_cfg Pretrained with prefix='backbone.' takes a converted mmhrsam checkpoint (its
    prompt encoder and decoder weights are ignored)."""
    from mmdet.registry import MODELS

    from mmhrsam.registry import MODELS as HRSAM_MODELS

    cfg = small_mask_rcnn(HRSAM_CONFIG, tiny_backbone)
    source = HRSAM_MODELS.build(dict(type='HRSAM', **{k: v for k, v in cfg.model.backbone.items()
                                                       if k not in ('type', 'out_indices', 'drop_path_rate')}))
    weights = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    weights['head.mask_decoder.iou_token.weight'] = torch.zeros(1, 32)
    save_state_dict(weights, str(tmp_path / 'hrsam.pth'))
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'hrsam.pth'),
                                       prefix='backbone.')
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        model.init_weights()
    loaded = model.backbone.state_dict()
    assert loaded.keys() == source.state_dict().keys()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
