"""HRSAM in mmpretrain: configs/mmpretrain/ build mmpretrain's own ImageClassifier through its
registries with HRSAM swapped in, and train one step with the configs' optimizer settings
(layer-wise lr decay for fine-tuning, a fixed backbone for linear probing)."""
import copy
import os

import pytest
import torch

pytest.importorskip('mmpretrain', reason='needs mmpretrain (requirements/mmpretrain.txt)')

from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FINETUNE = os.path.join(ROOT, 'configs', 'mmpretrain', 'hrsam_vit-b_8xb128-coslr-100e_in1k.py')
LINEAR = os.path.join(ROOT, 'configs', 'mmpretrain', 'hrsam_vit-b_linear-probe_8xb2048-coslr-90e_in1k.py')
SIZE = 64  # the tiny HRSAM's 4x4 token grid


def test_every_config_is_tested():
    assert sorted(os.listdir(os.path.dirname(FINETUNE))) == sorted(map(os.path.basename, (FINETUNE, LINEAR)))


def build(path, tiny_backbone):
    """The config's classifier (tiny HRSAM, 10 classes) and its optimizer wrapper (AMP, which
    needs a GPU, replaced by the plain wrapper)."""
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(path)
    cfg.model.head.update(in_channels=tiny_backbone(cfg.model.backbone), num_classes=10)
    # what MMEngine's Runner does with the top-level data_preprocessor
    cfg.model.data_preprocessor = dict(cfg.data_preprocessor, num_classes=10)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        model.init_weights()
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        optim_cfg.type = 'OptimWrapper'
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    assert type(model).__name__ == 'ImageClassifier' and type(model.backbone).__name__ == 'HRSAM'
    return cfg, model, optim_wrapper


def batch(num_classes=10):
    from mmpretrain.structures import DataSample

    torch.manual_seed(1)
    images = [torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8) for _ in range(4)]
    samples = [DataSample().set_gt_label(i % num_classes) for i in range(4)]
    return dict(inputs=images, data_samples=samples)


def train_step(model, optim_wrapper):
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        log_vars = model.train_step(batch(), optim_wrapper)
    assert torch.isfinite(log_vars['loss'])
    return {n: not torch.equal(p, params[n]) for n, p in model.named_parameters()}


def test_finetune_config_trains_a_step_with_layer_decay(tiny_backbone):
    cfg, model, optim_wrapper = build(FINETUNE, tiny_backbone)
    assert cfg.model.backbone.out_indices == (3, )
    scale = {id(p): g['lr'] / cfg.optim_wrapper.optimizer.lr for g in optim_wrapper.optimizer.param_groups
             for p in g['params']}
    # 4 blocks, rate 0.65: block i has lr scale 0.65 ** (4 - i), the head 1
    for i, block in enumerate(model.backbone.blocks):
        assert scale[id(block.attn.qkv.weight)] == pytest.approx(0.65 ** (4 - i))
    assert all(scale[id(p)] == 1.0 for p in model.head.parameters())

    changed = train_step(model, optim_wrapper)
    assert changed['backbone.blocks.0.attn.qkv.weight'] and changed['head.fc.weight']


def test_linear_probe_config_trains_only_the_head(tiny_backbone):
    cfg, model, optim_wrapper = build(LINEAR, tiny_backbone)
    assert cfg.model.backbone.get('out_indices') is None  # the fused embedding
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(2, 3, SIZE, SIZE))
    assert feats[-1].shape == (2, 32)  # global average of the (2, 32, 4, 4) embedding

    changed = train_step(model, optim_wrapper)
    backbone = [n for n in changed if n.startswith('backbone.')]
    assert backbone and not any(changed[n] for n in backbone)
    assert changed['head.layers.head.weight']
