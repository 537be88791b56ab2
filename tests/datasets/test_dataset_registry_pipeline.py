"""Every registered dataset from fixture data; full pipelines into the data preprocessor."""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS as ROOT_DATASETS
from torch.utils.data import DataLoader

from dataset_fixtures import skip_serialization_gc  # noqa: F401  (autouse)
from dataset_fixtures import dataset_configs, make_davis_tree
from mmhrsam.datasets import BaseInteractiveDataset
from mmhrsam.models.data_preprocessor import InteractiveDataPreprocessor
from mmhrsam.registry import DATASETS

TRAIN_PIPELINE = [dict(type='SampleObject'), dict(type='ResizeLongestSide', long_side=64),
                  dict(type='PhotoMetricDistortion'), dict(type='RandomFlip', prob=0.5),
                  dict(type='PackInteractiveInputs')]
TEST_PIPELINE = [dict(type='ResizeLongestSide', long_side=64), dict(type='PackInteractiveInputs')]


@pytest.fixture(scope='module')
def configs(tmp_path_factory):
    return dataset_configs(tmp_path_factory.mktemp('all'))


def check_results(item, test_mode):
    img, masks = item['img'], item['gt_masks']
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert masks.dtype == np.uint8 and masks.shape[1:] == img.shape[:2]
    assert len(masks) == len(item['instance_ids']) >= 1
    assert set(np.unique(masks)) <= {0, 1, 255} and (masks == 1).any()
    assert isinstance(item['img_id'], str) and item['ori_shape'] == img.shape[:2]
    if test_mode:
        assert len(masks) == 1 and item['instance_id'] == item['instance_ids'][0]


def test_every_registered_dataset_builds_from_fixture_data(configs):
    names = {name for name, cls in DATASETS.module_dict.items()
             if issubclass(cls, BaseInteractiveDataset) and cls is not BaseInteractiveDataset}
    assert names == set(configs), 'a registered dataset lacks a fixture in dataset_fixtures.py'
    for name in sorted(names):
        train = DATASETS.build(dict(type=name, **configs[name]))
        test = DATASETS.build(dict(type=name, test_mode=True, **configs[name]))
        assert len(train) >= 1 and len(test) >= len(train), name
        total = sum(len(train.get_instance_ids(i)) for i in range(len(train)))
        assert len(test) == total, name  # one test item per instance
        check_results(train[0], test_mode=False)
        check_results(test[len(test) - 1], test_mode=True)
        ids = [(test.get_data_info(i)['img_id'], test.get_data_info(i)['instance_id'])
               for i in range(len(test))]
        assert len(set(ids)) == len(ids), name


def test_datasets_mix_in_concat_dataset(configs):
    from mmengine.dataset import ConcatDataset
    names = ['CocoInteractiveDataset', 'LvisInteractiveDataset', 'SyntheticHighResDataset',
             'HQSeg44KDataset']
    concat = ConcatDataset([dict(type=f'mmhrsam.{n}', **configs[n]) for n in names])
    assert len(concat) == sum(len(DATASETS.build(dict(type=n, **configs[n]))) for n in names)
    assert concat.metainfo == dict(classes=('object',))


def test_abstract_base_cannot_load():
    with pytest.raises(NotImplementedError, match='load_image_infos'):
        DATASETS.build(dict(type='BaseInteractiveDataset'))


def test_scoped_build_from_the_root_registry_with_unscoped_transforms(tmp_path):
    make_davis_tree(tmp_path)
    ds = ROOT_DATASETS.build(dict(type='mmhrsam.DavisDataset', data_root=str(tmp_path),
                                  test_mode=True, pipeline=TEST_PIPELINE))
    packed = ds[0]
    assert packed['inputs'].shape == (3, 43, 64)  # 20x30 -> long side 64
    assert packed['data_samples'].instance_id == '0'


def test_training_pipeline_through_collate_and_preprocessor(configs):
    ds = DATASETS.build(dict(type='SyntheticHighResDataset', pipeline=TRAIN_PIPELINE,
                             **configs['SyntheticHighResDataset']))
    np.random.seed(0)
    loader = DataLoader(ds, batch_size=2, collate_fn=pseudo_collate, num_workers=0)
    batch = next(iter(loader))
    assert [x.dtype for x in batch['inputs']] == [torch.uint8] * 2
    out = InteractiveDataPreprocessor(pad_size=64)(batch, training=True)
    assert out['inputs'].shape == (2, 3, 64, 64) and out['inputs'].dtype == torch.float32
    for sample, img in zip(out['data_samples'], batch['inputs']):
        h, w = img.shape[-2:]
        assert max(h, w) == 64 and sample.img_shape == (h, w)
        assert sample.gt_mask.shape == (1, 64, 64)
        assert set(torch.unique(sample.gt_mask).tolist()) <= {0, 1, 255}
        assert (sample.gt_mask[0, :h, :w] == 1).any() and sample.pad_shape == (64, 64)
        assert sample.img_path is None and sample.instance_id.isdigit()
        ori_h, ori_w = sample.ori_shape
        assert sample.scale_factor == pytest.approx((h / ori_h, w / ori_w))


def test_test_pipeline_packs_every_instance_of_coco(configs):
    ds = DATASETS.build(dict(type='CocoInteractiveDataset', test_mode=True, pipeline=TEST_PIPELINE,
                             **configs['CocoInteractiveDataset']))
    batch = pseudo_collate([ds[i] for i in range(len(ds))])
    out = InteractiveDataPreprocessor(pad_size=64, bgr_input=True)(batch)
    assert out['inputs'].shape == (len(ds), 3, 64, 64)
    assert [(s.img_id, s.instance_id) for s in out['data_samples']] == [
        ('1', '11'), ('1', '12'), ('1', '13'), ('2', '21')]
    assert all(s.ori_shape == (40, 50) and s.img_shape == (51, 64) for s in out['data_samples'])
