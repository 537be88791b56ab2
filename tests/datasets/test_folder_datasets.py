"""HQSeg-44K, DAVIS, GrabCut, Berkeley and generic folders; bad-sample behaviour."""
import numpy as np
import pytest

from dataset_fixtures import skip_serialization_gc  # noqa: F401  (autouse)
from dataset_fixtures import (HQ_VAL_DIRS, captured_warnings, grabcut_gt, hqseg_expected,
                              make_berkeley_tree, make_davis_tree, make_folder_tree,
                              make_grabcut_tree, make_hqseg_tree, random_rgb, rect_mask,
                              write_image)
from mmhrsam.datasets import (HQSEG44K_SUBSETS, BerkeleyDataset, DavisDataset, FolderDataset,
                              GrabCutDataset, HQSeg44KDataset)
from mmhrsam.datasets.hqseg44k import resolve_subsets


def test_hqseg_subset_table_matches_sam_hq_layout():
    val = [n for n, c in HQSEG44K_SUBSETS.items() if c['split'] == 'val']
    assert val == ['DIS5K-VD', 'COIFT', 'HRSOD', 'ThinObject5K-TE']
    assert sum(HQSEG44K_SUBSETS[n]['num_images'] for n in val) == 1537  # docs/evaluation_protocol.md
    for name, (img_dir, mask_dir) in HQ_VAL_DIRS.items():
        assert (HQSEG44K_SUBSETS[name]['img_dir'], HQSEG44K_SUBSETS[name]['mask_dir']) == (
            img_dir, mask_dir)
    assert len(resolve_subsets('train', None)) == 7
    with pytest.raises(ValueError, match='unknown HQSeg-44K subsets'):
        resolve_subsets('val', ['COIFT', 'nope'])


def test_hqseg_val_reads_every_subset_with_gt_above_zero(tmp_path):
    make_hqseg_tree(tmp_path)
    with captured_warnings() as warnings:
        ds = HQSeg44KDataset(data_root=str(tmp_path), split='val', test_mode=True)
    assert any('expected 470' in w for w in warnings)  # the tiny tree is "incomplete"
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == [
        'DIS5K-VD/dis5k-vd_a', 'COIFT/coift_a', 'HRSOD/hrsod_a',
        'ThinObject5K-TE/thinobject5k-te_a']
    for i in range(len(ds)):
        np.testing.assert_array_equal(ds[i]['gt_masks'][0], hqseg_expected(i))
    only = HQSeg44KDataset(data_root=str(tmp_path), subsets=['HRSOD'])
    assert len(only) == 1 and only.get_data_info(0)['img_id'].startswith('HRSOD/')
    train = HQSeg44KDataset(data_root=str(tmp_path), split='train', subsets=['MSRA-10K'])
    np.testing.assert_array_equal(train.load_masks(0)[0], rect_mask(16, 16, 2, 8, 2, 8, 1))


def test_davis_threshold_above_zero(tmp_path):
    make_davis_tree(tmp_path)
    ds = DavisDataset(data_root=str(tmp_path), test_mode=True)
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == ['bear_00000', 'boat_00010']
    np.testing.assert_array_equal(ds[1]['gt_masks'][0], rect_mask(20, 30, 5, 15, 4, 21, 1))


def test_grabcut_unknown_band_is_ignore(tmp_path):
    make_grabcut_tree(tmp_path)
    ds = GrabCutDataset(data_root=str(tmp_path), test_mode=True)
    assert sorted(ds.get_data_info(i)['img_path'].rsplit('/', 1)[1] for i in range(2)) == [
        'banana1.bmp', 'flower.jpg']
    expected = np.where(grabcut_gt() == 128, 255, grabcut_gt() == 255).astype(np.uint8)
    mask = ds[0]['gt_masks'][0]
    np.testing.assert_array_equal(mask, expected)
    assert set(np.unique(mask)) == {0, 1, 255}


def test_berkeley_layout(tmp_path):
    make_berkeley_tree(tmp_path)
    ds = BerkeleyDataset(data_root=str(tmp_path))
    np.testing.assert_array_equal(ds[0]['gt_masks'][0], rect_mask(20, 24, 2, 10, 2, 10, 1))


def test_folder_indexed_instances_and_test_mode(tmp_path):
    make_folder_tree(tmp_path)
    train = FolderDataset(data_root=str(tmp_path), naming='indexed')
    assert len(train) == 2  # c.jpg has no mask
    assert train[0]['gt_masks'].shape == (2, 16, 20) and train[0]['instance_ids'] == ['0', '1']
    test = FolderDataset(data_root=str(tmp_path), naming='indexed', test_mode=True)
    assert [(test.get_data_info(i)['img_id'], test.get_data_info(i)['instance_id'])
            for i in range(len(test))] == [('a', '0'), ('a', '1'), ('b', '0')]
    np.testing.assert_array_equal(test[1]['gt_masks'][0], rect_mask(16, 20, 8, 16, 10, 20, 1))


def test_mask_of_another_size_names_both_files(tmp_path):
    write_image(tmp_path / 'images/a.jpg', random_rgb(16, 20))
    write_image(tmp_path / 'masks/a.png', rect_mask(16, 21, 0, 5, 0, 5))
    ds = FolderDataset(data_root=str(tmp_path), test_mode=True)
    with pytest.raises(ValueError, match=r'masks/a\.png.*images/a\.jpg'):
        ds.load_masks(0)
    with pytest.raises(ValueError, match=r'masks/a\.png.*images/a\.jpg'):
        ds[0]


def _tree_with_one_bad_sample(root, bad: str):
    for name in ('good', 'bad'):
        write_image(root / 'images' / f'{name}.jpg', random_rgb(16, 16))
        write_image(root / 'masks' / f'{name}.png', rect_mask(16, 16, 2, 9, 2, 9))
    if bad == 'empty':
        write_image(root / 'masks/bad.png', np.zeros((16, 16), np.uint8))
    else:  # truncated jpeg
        data = (root / 'images/bad.jpg').read_bytes()
        (root / 'images/bad.jpg').write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize('bad', ['empty', 'truncated'])
def test_bad_sample_warns_and_refetches_in_training(tmp_path, bad):
    _tree_with_one_bad_sample(tmp_path, bad)
    ds = FolderDataset(data_root=str(tmp_path))
    assert ds.get_data_info(0)['img_id'] == 'bad'
    np.random.seed(0)
    with captured_warnings() as warnings:
        results = ds[0]
    assert results['img_id'] == 'good'
    assert any('bad.' in w and 'skipping item 0' in w for w in warnings)
    assert ds.prepare_data(0) is None


@pytest.mark.parametrize('bad', ['empty', 'truncated'])
def test_bad_sample_raises_in_test_mode(tmp_path, bad):
    _tree_with_one_bad_sample(tmp_path, bad)
    ds = FolderDataset(data_root=str(tmp_path), test_mode=True)
    with pytest.raises(ValueError, match='empty masks' if bad == 'empty' else r'bad\.jpg'):
        ds[0]


def test_training_drops_empty_instances_but_keeps_the_image(tmp_path):
    make_folder_tree(tmp_path)
    write_image(tmp_path / 'masks/a_1.png', np.zeros((16, 20), np.uint8))
    results = FolderDataset(data_root=str(tmp_path), naming='indexed')[0]
    assert results['instance_ids'] == ['0'] and results['gt_masks'].shape == (1, 16, 20)
