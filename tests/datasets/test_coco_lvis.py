"""COCO instances / panoptic and LVIS read from tiny trees in the real layouts."""
import cv2
import numpy as np
import pytest

from dataset_fixtures import skip_serialization_gc  # noqa: F401  (autouse)
from dataset_fixtures import (COCO_H, COCO_W, POLYGON, make_coco_tree, make_lvis_tree,
                              make_panoptic_tree, rect_mask, rle_mask)
from mmhrsam.datasets import (CocoInteractiveDataset, CocoPanopticInteractiveDataset,
                              LvisInteractiveDataset)


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco')
    make_coco_tree(root)
    make_lvis_tree(root)
    make_panoptic_tree(root)
    return root


def test_coco_train_items_filter_crowd_small_and_empty_images(coco_root):
    ds = CocoInteractiveDataset(data_root=str(coco_root), min_area=100)
    assert len(ds) == 2  # image 3 has no objects
    info = ds.get_data_info(0)
    assert info['img_id'] == '1' and info['img_path'].endswith('train2017/000000000001.jpg')
    assert [inst['instance_id'] for inst in info['instances']] == ['11', '12', '13']
    results = ds[0]
    assert results['img'].shape == (COCO_H, COCO_W, 3) and results['img'].dtype == np.uint8
    assert results['gt_masks'].shape == (3, COCO_H, COCO_W)
    assert results['gt_masks'].dtype == np.uint8
    assert results['instance_ids'] == ['11', '12', '13']
    assert results['ori_shape'] == (COCO_H, COCO_W)
    assert len(CocoInteractiveDataset(data_root=str(coco_root), min_area=0)
               .get_data_info(0)['instances']) == 4  # the 4-px object is back, crowd never


def test_coco_polygon_matches_cv2_rasterization(coco_root):
    ds = CocoInteractiveDataset(data_root=str(coco_root), min_area=100)
    mask = ds.load_masks(0)[0]
    drawn = np.zeros((COCO_H, COCO_W), np.uint8)
    cv2.fillPoly(drawn, [POLYGON.round().astype(np.int32)], 1)
    outline = np.zeros_like(drawn)
    cv2.polylines(outline, [POLYGON.round().astype(np.int32)], True, 1, 3)
    differ = mask != drawn
    assert set(np.unique(mask)) == {0, 1}
    assert (mask & drawn).sum() / (mask | drawn).sum() > 0.9
    assert not (differ & (outline == 0)).any()  # the rasterizers only disagree on the outline


def test_coco_rle_compressed_and_uncompressed_are_exact(coco_root):
    masks = CocoInteractiveDataset(data_root=str(coco_root), min_area=100).load_masks(0)
    np.testing.assert_array_equal(masks[1], rle_mask())  # rectangle with a hole
    np.testing.assert_array_equal(masks[2], rect_mask(COCO_H, COCO_W, 30, 40, 0, 20, value=1))
    rect = CocoInteractiveDataset(data_root=str(coco_root), min_area=100).load_masks(1)[0]
    np.testing.assert_array_equal(rect, rect_mask(COCO_H, COCO_W, 10, 20, 10, 30, value=1))


def test_malformed_segmentation_is_a_bad_sample():
    from mmhrsam.datasets.coco import segmentation_to_mask
    from mmhrsam.datasets.io import BadSampleError
    with pytest.raises(BadSampleError, match='cannot decode COCO segmentation'):
        segmentation_to_mask(dict(size=[4, 4], counts=5), 4, 4)
    with pytest.raises(BadSampleError, match='unsupported'):
        segmentation_to_mask('polygon?', 4, 4)
    assert segmentation_to_mask([[1, 1, 2, 2]], 4, 4).sum() == 0  # degenerate polygon


def test_coco_crowd_as_ignore_marks_255_outside_the_target(coco_root):
    masks = CocoInteractiveDataset(data_root=str(coco_root), min_area=100,
                                   crowd_as_ignore=True).load_masks(0)
    crowd = rect_mask(COCO_H, COCO_W, 20, 40, 40, 50, value=1).astype(bool)
    plain = CocoInteractiveDataset(data_root=str(coco_root), min_area=100).load_masks(0)
    for mask, ref in zip(masks, plain):
        assert (mask[crowd & (ref == 0)] == 255).all()
        np.testing.assert_array_equal(mask[~crowd], ref[~crowd])
        assert (mask[crowd & (ref == 1)] == 1).all()


def test_coco_test_mode_has_one_item_per_instance(coco_root):
    ds = CocoInteractiveDataset(data_root=str(coco_root), min_area=100, test_mode=True)
    assert [(ds.get_data_info(i)['img_id'], ds.get_data_info(i)['instance_id'])
            for i in range(len(ds))] == [('1', '11'), ('1', '12'), ('1', '13'), ('2', '21')]
    item = ds[1]
    assert item['gt_masks'].shape == (1, COCO_H, COCO_W)
    assert item['instance_id'] == '12' and item['instance_ids'] == ['12']
    np.testing.assert_array_equal(item['gt_masks'][0], rle_mask())


def test_coco_annotation_size_mismatch_names_both_files(coco_root, tmp_path):
    import json
    import shutil
    shutil.copytree(coco_root / 'train2017', tmp_path / 'train2017')
    data = json.loads((coco_root / 'annotations/instances_train2017.json').read_text())
    data['images'][1]['height'] = COCO_H + 2  # the json disagrees with the jpg of image 2
    data['annotations'] = [a for a in data['annotations'] if a['image_id'] == 2]
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations/instances_train2017.json').write_text(json.dumps(data))
    ds = CocoInteractiveDataset(data_root=str(tmp_path), min_area=100, test_mode=True)
    with pytest.raises(ValueError, match=r'000000000002\.jpg.*|instances_train2017\.json') as e:
        ds[0]
    assert '000000000002.jpg' in str(e.value) and 'instances_train2017.json' in str(e.value)


def test_panoptic_segments_from_rgb_ids(coco_root):
    ds = CocoPanopticInteractiveDataset(data_root=str(coco_root), min_area=100)
    assert ds.get_data_info(0)['instances'] == [{'instance_id': '1000'}, {'instance_id': '70000'}]
    masks = ds.load_masks(0)
    np.testing.assert_array_equal(masks[0], rect_mask(COCO_H, COCO_W, 0, 20, 0, 25, value=1))
    np.testing.assert_array_equal(masks[1], rect_mask(COCO_H, COCO_W, 20, 40, 0, 50, value=1))
    things = CocoPanopticInteractiveDataset(data_root=str(coco_root), min_area=100,
                                            things_only=True)
    assert things.get_data_info(0)['instances'] == [{'instance_id': '1000'}]
    ignore = CocoPanopticInteractiveDataset(data_root=str(coco_root), min_area=100,
                                            crowd_as_ignore=True).load_masks(0)
    assert (ignore[:, 0:20, 40:50] == 255).all()


def test_mmdet_style_data_prefix_is_accepted(coco_root, tmp_path):
    ds = CocoInteractiveDataset(data_root=str(coco_root), data_prefix=dict(img='train2017/'),
                                min_area=100)
    assert ds.get_data_info(0)['img_path'] == str(coco_root / 'train2017' / '000000000001.jpg')
    pan = CocoPanopticInteractiveDataset(data_root=str(coco_root), min_area=100,
                                         data_prefix=dict(img='train2017/'))
    assert pan.get_data_info(0)['seg_path'].endswith('annotations/panoptic_train2017/'
                                                     '000000000001.png')


def test_lvis_images_located_by_coco_url(coco_root):
    ds = LvisInteractiveDataset(data_root=str(coco_root), min_area=150)
    assert [ds.get_data_info(i)['img_path'].split('/')[-2] for i in range(len(ds))] == [
        'train2017', 'val2017']
    assert [inst['instance_id'] for inst in ds.get_data_info(1)['instances']] == ['102']
    results = ds[1]
    np.testing.assert_array_equal(results['gt_masks'][0],
                                  rect_mask(COCO_H, COCO_W, 0, 10, 0, 30, value=1))
    assert len(LvisInteractiveDataset(data_root=str(coco_root), min_area=0, test_mode=True)) == 3
