"""Every config in configs/ builds: models (HRSAM-family ones run a forward pass), datasets
on fixture trees in the real layouts (one item is loaded through the pipeline), loops,
optimizer constructors, schedulers and evaluators; the mmseg config trains one step with
HRSAM swapped in for mmseg's ViT."""
import copy
import glob
import os
import sys

import pytest
import torch
from mmengine.config import Config

import mmhrsam  # noqa: F401
from mmhrsam.registry import MODELS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'datasets'))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)
# configs of other OpenMMLab libraries: built and trained by their own tests (mmseg below,
# mmdet and mmpretrain in tests/interop/)
OTHER_LIBRARIES = ('/configs/mmseg/', '/configs/mmdet/', '/configs/mmpretrain/')
OWN = [p for p in CONFIGS if not any(d in p for d in OTHER_LIBRARIES)]
MMSEG = [p for p in CONFIGS if '/configs/mmseg/' in p]


def rel(p):
    return os.path.relpath(p, ROOT)


def inheritance_depth(path):
    bases = Config._get_base_files(path) if hasattr(Config, '_get_base_files') else []
    local = [os.path.join(os.path.dirname(path), b) for b in bases if '::' not in b]
    return 1 + max((inheritance_depth(b) for b in local), default=0)


@pytest.mark.parametrize('path', CONFIGS, ids=rel)
def test_at_most_three_levels_of_inheritance(path):
    assert inheritance_depth(path) <= 3


@pytest.mark.parametrize('path', OWN, ids=rel)
def test_config_builds_the_interactive_model(path):
    cfg = Config.fromfile(path)
    backbone = cfg.model.backbone
    if backbone.type == 'SAMViT' and backbone.arch != 'vit-b':
        # ViT-L/H at full size cost seconds and GBs to initialize; their layouts are checked
        # against segment_anything's builders in tests/models/backbones/test_sam_vit.py.
        backbone.update(img_size=64)
    if backbone.type == 'HRSAMPlusPlus':
        backbone.update(anchor_size=128)  # the 512² default adds 1024 tokens to every scan
    model = MODELS.build(cfg.model).eval()
    assert {'backbone', 'head'} <= {n for n, _ in model.named_children()}
    if 'predictor' in cfg:
        assert cfg.predictor.target_size % 16 == 0
    if backbone.type.startswith('HRSAM') and backbone.get('out_channels', 256) == 256:
        with torch.no_grad():
            emb = model.extract_feat(torch.randn(1, 3, 256, 192))
            logits, iou = model.decode(emb, torch.tensor([[[40., 100.]]]), torch.tensor([[1]]))
        assert emb.shape == (1, 256, 16, 12) and logits.shape == (1, 1, 64, 48) and iou.shape == (1, 1)


RUNNABLE = [p for p in OWN if 'test_dataloader' in Config.fromfile(p)]


@pytest.fixture(scope='module')
def fixture_data(tmp_path_factory):
    from dataset_fixtures import dataset_configs
    return dataset_configs(tmp_path_factory.mktemp('data'))


def _on_fixtures(dataset_cfg, fixtures):
    """The dataset config with every leaf dataset reading the fixture tree instead of data/."""
    cfg = copy.deepcopy(dataset_cfg)
    if cfg.type == 'ConcatDataset':
        cfg.datasets = [_on_fixtures(d, fixtures) for d in cfg.datasets]
        return cfg
    cfg.update(fixtures[cfg.type])
    return cfg


@pytest.mark.parametrize('path', RUNNABLE, ids=rel)
def test_config_builds_datasets_loops_and_evaluators(path, fixture_data):
    from mmengine.registry import DefaultScope
    from mmhrsam.registry import DATASETS, LOOPS, METRICS, OPTIM_WRAPPER_CONSTRUCTORS, PARAM_SCHEDULERS

    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmhrsam'
    with DefaultScope.overwrite_default_scope('mmhrsam'):
        for key in ('train_dataloader', 'test_dataloader'):
            if not cfg.get(key):
                continue
            dataset = DATASETS.build(_on_fixtures(cfg[key].dataset, fixture_data))
            assert len(dataset) > 0
            steps = str(cfg[key].dataset)
            if 'LoadTeacherEmbedding' not in steps:  # needs extracted embeddings, tested on its own
                item = dataset[0]
                assert item['inputs'].dtype == torch.uint8 and item['inputs'].shape[0] == 3
                assert item['data_samples'].gt_mask.shape[-2:] == item['inputs'].shape[-2:]
        assert LOOPS.get(cfg.test_cfg.type) is not None
        METRICS.build(cfg.test_evaluator)
        if cfg.get('train_cfg'):
            assert LOOPS.get(cfg.train_cfg.type) is not None
            assert OPTIM_WRAPPER_CONSTRUCTORS.get(cfg.optim_wrapper.constructor) is not None
            for scheduler in cfg.param_scheduler:
                assert PARAM_SCHEDULERS.get(scheduler.type) is not None


@pytest.mark.parametrize('path', MMSEG, ids=rel)
def test_hrsam_drops_into_mmseg_upernet(path):
    pytest.importorskip('mmcv.ops', reason='mmseg models need full mmcv; tools/install_mmcv.sh')
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(path)
    with DefaultScope.overwrite_default_scope('mmseg'):  # restored afterwards for other tests
        _train_one_step(cfg)


def _train_one_step(cfg):
    from mmseg.registry import MODELS as SEG_MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData

    # a small HRSAM keeps the test fast; the config's own backbone is the ViT-B default
    cfg.model.backbone.update(embed_dim=96, depth=4, num_heads=4, num_stages=4, window_size=4,
                              cycle_scan_cfg=dict(type='CycleScan', d_state=8))
    for key in ('neck', 'decode_head', 'auxiliary_head'):
        cfg.model[key].in_channels = [96] * 4 if key != 'auxiliary_head' else 96
    cfg.model.neck.out_channels = 96
    cfg.model.decode_head.norm_cfg = cfg.model.auxiliary_head.norm_cfg = dict(type='BN', requires_grad=True)
    model = SEG_MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'HRSAM'
    samples = []
    for _ in range(2):  # UPerHead's pooling branch needs batch > 1 for BatchNorm
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 150, (1, 128, 128))))
        sample.set_metainfo(dict(img_shape=(128, 128), pad_shape=(128, 128), ori_shape=(128, 128)))
        samples.append(sample)
    images = [torch.randint(0, 255, (3, 128, 128), dtype=torch.uint8) for _ in samples]
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert torch.isfinite(total)
    assert model.backbone.blocks[0].attn.qkv.weight.grad is not None
