"""SyntheticHighResDataset: determinism, structure (thin parts, holes), occlusion, modes."""
import hashlib
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest
from scipy import ndimage

from dataset_fixtures import skip_serialization_gc  # noqa: F401  (autouse)
from mmhrsam.datasets import SyntheticHighResDataset, generate_scene
from mmhrsam.datasets import synthetic

ROOT = __file__.rsplit('/tests/', 1)[0]


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(repr((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_same_seed_and_index_give_identical_scenes_in_any_order():
    a = SyntheticHighResDataset(num_images=3, image_size=(64, 96), seed=5)
    b = SyntheticHighResDataset(num_images=3, image_size=(64, 96), seed=5)
    first = [digest(a.load_image(i), a.load_masks(i)) for i in range(3)]
    second = [digest(b.load_image(i), b.load_masks(i)) for i in (2, 0, 1)]
    assert first == [second[1], second[2], second[0]]
    assert len(set(first)) == 3
    other = SyntheticHighResDataset(num_images=1, image_size=(64, 96), seed=6)
    assert digest(other.load_image(0), other.load_masks(0)) != first[0]


def test_scenes_are_identical_across_processes():
    code = textwrap.dedent("""
        import hashlib, numpy as np
        from mmhrsam.datasets.synthetic import generate_scene
        s = generate_scene(3, 2, (96, 160), max_objects=6, min_object_pixels=16)
        h = hashlib.sha256()
        for a in (s.image, s.masks()):
            h.update(repr((a.shape, a.dtype.str)).encode()); h.update(a.tobytes())
        print(h.hexdigest())
    """)
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    s = generate_scene(3, 2, (96, 160), max_objects=6, min_object_pixels=16)
    assert out == digest(s.image, s.masks())


def test_sizes_square_and_ranged_non_square():
    square = SyntheticHighResDataset(num_images=2, image_size=40)
    assert {square.load_image(i).shape for i in range(2)} == {(40, 40, 3)}
    ranged = SyntheticHighResDataset(num_images=6, image_size=(48, 80))
    shapes = [ranged.load_image(i).shape[:2] for i in range(6)]
    assert all(48 <= s <= 80 for hw in shapes for s in hw)
    assert any(h != w for h, w in shapes)
    assert [ranged.image_shape(i) for i in range(6)] == shapes
    with pytest.raises(ValueError, match='image_size'):
        SyntheticHighResDataset(num_images=1, image_size=(80, 48))


def test_masks_do_not_overlap_and_objects_stand_out():
    for index in range(4):
        scene = generate_scene(0, index, 192, max_objects=8, min_object_pixels=32)
        masks, image = scene.masks(), scene.image.astype(np.float64)
        assert masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 1}
        assert masks.sum(0).max() == 1  # no pixel in two objects
        assert (masks.reshape(len(masks), -1).sum(1) >= 32).all()
        background = masks.sum(0) == 0
        for mask in masks.astype(bool):
            ring = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
            ring &= background
            if ring.sum() < 20:
                continue  # fully surrounded by other objects
            gap = np.linalg.norm(image[mask].mean(0) - image[ring].mean(0))
            assert gap > 40, (index, gap)


def _has_hole(mask) -> bool:
    return bool((ndimage.binary_fill_holes(mask) & ~mask).any())


def _has_thin_part(mask) -> bool:
    """Some connected component disappears under erosion by a 4x4 square (width <= 3 px)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    eroded = ndimage.binary_erosion(mask, np.ones((4, 4)))
    survivors = set(np.unique(labels[eroded]))
    return any(k not in survivors for k in range(1, n + 1))


def test_scenes_contain_thin_structures_and_holes():
    masks = [m.astype(bool) for i in range(8)
             for m in generate_scene(1, i, 256, max_objects=8).masks()]
    assert sum(map(_has_hole, masks)) >= 2
    assert sum(map(_has_thin_part, masks)) >= 2


@pytest.mark.parametrize('name,hole,thin', [
    ('ring', True, False), ('frame', True, False), ('net', True, True), ('perforated', True, None),
    ('wire', False, True), ('wavy', False, False), ('star', False, False)])
def test_each_shape_has_its_structure(name, hole, thin):
    """Over 6 draws: holes / thin parts present exactly where expected (None: either)."""
    found_hole = found_thin = False
    for seed in range(6):
        rng = np.random.default_rng(seed)
        canvas, _, _ = synthetic.SHAPES[name](rng, np.array([200.0, 200.0]), 60.0, 400)
        mask = canvas.astype(bool)
        assert mask.any()
        found_hole |= _has_hole(mask)
        found_thin |= _has_thin_part(mask)
    assert found_hole == hole
    assert thin is None or found_thin == thin


def test_tree_thins_down_to_one_pixel_twigs():
    rng = np.random.default_rng(0)
    canvas, _, _ = synthetic.SHAPES['tree'](rng, np.array([100.0, 100.0]), 80.0, 200)
    mask = canvas.astype(bool)
    # A 1-px twig vanishes under a 2x2 erosion; the 3+ px trunk survives it.
    opened = ndimage.binary_opening(mask, np.ones((2, 2)))
    assert (mask & ~opened).sum() > 20 and opened.any()


def test_test_mode_enumerates_instances_and_matches_training_masks():
    train = SyntheticHighResDataset(num_images=3, image_size=(48, 64), min_object_pixels=16)
    test = SyntheticHighResDataset(num_images=3, image_size=(48, 64), min_object_pixels=16,
                                   test_mode=True)
    expected = [(i, k) for i in range(3) for k in train.get_instance_ids(i)]
    assert [(test.get_data_info(j)['scene_index'], test.get_data_info(j)['instance_id'])
            for j in range(len(test))] == expected
    j = len(test) - 1
    item = test[j]
    scene_index, instance = expected[j]
    full = train[scene_index]
    assert item['img_path'] is None and item['img_id'] == f'synthetic-0-{scene_index:06d}'
    np.testing.assert_array_equal(item['img'], full['img'])
    np.testing.assert_array_equal(item['gt_masks'][0],
                                  full['gt_masks'][full['instance_ids'].index(instance)])


def test_image_then_masks_draws_once(monkeypatch):
    ds = SyntheticHighResDataset(num_images=2, image_size=32)
    calls = []
    original = synthetic.generate_scene
    monkeypatch.setattr(synthetic, 'generate_scene',
                        lambda *a, **k: calls.append(a) or original(*a, **k))
    ds[1]
    assert len(calls) == 1
    ds.load_masks(1)
    assert len(calls) == 1
    ds.load_image(0)
    assert len(calls) == 2


def test_generation_is_fast_at_1024():
    generate_scene(0, 0, 256)  # warm-up
    start = time.perf_counter()
    for i in range(3):
        scene = generate_scene(0, i, 1024)
        scene.masks()
    assert (time.perf_counter() - start) / 3 < 0.5  # ~0.01-0.03 s measured
