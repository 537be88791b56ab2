"""Tiny dataset trees in the real public layouts, and expected masks drawn by hand."""
import contextlib
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger


@pytest.fixture(autouse=True)
def skip_serialization_gc(monkeypatch):
    """MMEngine's data-list serialization runs ``gc.collect()`` (0.3 s with torch loaded)
    per dataset; these tests build dozens of tiny datasets, so skip that collection (the
    serialization itself still runs). Test modules use it with ``from dataset_fixtures
    import skip_serialization_gc``."""
    import types
    import mmengine.dataset.base_dataset as base_dataset
    monkeypatch.setattr(base_dataset, 'gc', types.SimpleNamespace(collect=lambda: 0))


def write_image(path, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write an RGB (or gray / 16-bit) array with OpenCV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = rgb[..., ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    if rgb.ndim == 3 and rgb.shape[2] == 4:
        array = rgb[..., [2, 1, 0, 3]]
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() == '.jpg' else []
    assert cv2.imwrite(str(path), np.ascontiguousarray(array), params), path
    return path


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def rect_mask(height, width, y0, y1, x0, x1, value=255) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = value
    return mask


@contextlib.contextmanager
def captured_warnings():
    """Collect the messages of warnings logged through MMEngine's current logger."""
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                messages.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


# ---------------------------------------------------------------------- COCO / LVIS
COCO_H, COCO_W = 40, 50
#: Polygon (x, y) of annotation 1 (COCO coordinates).
POLYGON = np.array([[5, 5], [40, 8], [30, 35], [8, 30]], float)
#: Annotation 2: a rectangle with a hole, given as compressed RLE.
RLE_RECT = (2, 18, 30, 48)  # y0, y1, x0, x1
RLE_HOLE = (6, 10, 36, 42)


def rle_mask() -> np.ndarray:
    mask = rect_mask(COCO_H, COCO_W, *RLE_RECT, value=1)
    y0, y1, x0, x1 = RLE_HOLE
    mask[y0:y1, x0:x1] = 0
    return mask


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE computed by hand: column-major runs starting with zeros."""
    flat = mask.T.ravel()
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return dict(size=list(mask.shape), counts=counts)


def make_coco_tree(root: Path, split: str = 'train2017') -> dict:
    """instances json with a polygon, a compressed RLE, an uncompressed RLE, a small
    object and a crowd object on image 1; one polygon on image 2; image 3 without objects."""
    from pycocotools import mask as mask_utils
    for img_id in (1, 2, 3):
        write_image(root / split / f'{img_id:012d}.jpg', random_rgb(COCO_H, COCO_W, img_id))
    compressed = mask_utils.encode(np.asfortranarray(rle_mask()))
    compressed['counts'] = compressed['counts'].decode('ascii')
    bottom = rect_mask(COCO_H, COCO_W, 30, 40, 0, 20, value=1)  # 200 px
    anns = [
        dict(id=11, image_id=1, category_id=1, iscrowd=0, area=754.0,
             segmentation=[POLYGON.ravel().tolist()]),
        dict(id=12, image_id=1, category_id=1, iscrowd=0, area=float(rle_mask().sum()),
             segmentation=compressed),
        dict(id=13, image_id=1, category_id=1, iscrowd=0, area=200.0,
             segmentation=uncompressed_rle(bottom)),
        dict(id=14, image_id=1, category_id=1, iscrowd=0, area=4.0,
             segmentation=[[0, 0, 2, 0, 2, 2, 0, 2]]),  # below min_area
        dict(id=15, image_id=1, category_id=1, iscrowd=1, area=300.0,
             segmentation=uncompressed_rle(rect_mask(COCO_H, COCO_W, 20, 40, 40, 50, value=1))),
        dict(id=21, image_id=2, category_id=1, iscrowd=0, area=200.0,
             segmentation=[[10, 10, 30, 10, 30, 20, 10, 20]]),
    ]
    images = [dict(id=i, file_name=f'{i:012d}.jpg', height=COCO_H, width=COCO_W,
                   coco_url=f'http://images.cocodataset.org/{split}/{i:012d}.jpg')
              for i in (1, 2, 3)]
    data = dict(images=images, annotations=anns, categories=[dict(id=1, name='thing')])
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    (root / 'annotations' / 'instances_train2017.json').write_text(json.dumps(data))
    return data


def make_lvis_tree(root: Path) -> None:
    """LVIS json: image 1 in train2017/, image 2 in val2017/ (via coco_url), no iscrowd."""
    for img_id, split in ((1, 'train2017'), (2, 'val2017')):
        write_image(root / split / f'{img_id:012d}.jpg', random_rgb(COCO_H, COCO_W, img_id))
    images = [dict(id=i, height=COCO_H, width=COCO_W,
                   coco_url=f'http://images.cocodataset.org/{s}/{i:012d}.jpg')
              for i, s in ((1, 'train2017'), (2, 'val2017'))]
    anns = [dict(id=101, image_id=1, category_id=1, area=200.0,
                 segmentation=[[10, 10, 30, 10, 30, 20, 10, 20]]),
            dict(id=102, image_id=2, category_id=1, area=300.0,
                 segmentation=[[0, 0, 30, 0, 30, 10, 0, 10]]),
            dict(id=103, image_id=2, category_id=1, area=100.0,
                 segmentation=[[40, 30, 50, 30, 50, 40, 40, 40]])]
    data = dict(images=images, annotations=anns, categories=[dict(id=1, name='x')])
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    (root / 'annotations' / 'lvis_v1_train.json').write_text(json.dumps(data))


def make_panoptic_tree(root: Path) -> dict:
    """Panoptic json + PNG: segment ids 1000 (thing), 70000 (stuff, needs the B channel),
    5 (crowd) and 7 (tiny)."""
    write_image(root / 'train2017' / '000000000001.jpg', random_rgb(COCO_H, COCO_W, 5))
    ids = np.zeros((COCO_H, COCO_W), np.int64)
    ids[0:20, 0:25] = 1000
    ids[20:40, 0:50] = 70000
    ids[0:20, 40:50] = 5
    ids[0:2, 30:32] = 7
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    write_image(root / 'annotations' / 'panoptic_train2017' / '000000000001.png', rgb)
    segments = [dict(id=1000, category_id=1, iscrowd=0, area=500),
                dict(id=70000, category_id=2, iscrowd=0, area=1000),
                dict(id=5, category_id=1, iscrowd=1, area=200),
                dict(id=7, category_id=1, iscrowd=0, area=4)]
    data = dict(images=[dict(id=1, file_name='000000000001.jpg', height=COCO_H, width=COCO_W)],
                annotations=[dict(image_id=1, file_name='000000000001.png',
                                  segments_info=segments)],
                categories=[dict(id=1, name='person', isthing=1),
                            dict(id=2, name='sky', isthing=0)])
    (root / 'annotations' / 'panoptic_train2017.json').write_text(json.dumps(data))
    return dict(ids=ids)


# ---------------------------------------------------------------------- folders
HQ_VAL_DIRS = {  # SAM-HQ's train.py folder names
    'DIS5K-VD': ('DIS5K/DIS-VD/im', 'DIS5K/DIS-VD/gt'),
    'COIFT': ('thin_object_detection/COIFT/images', 'thin_object_detection/COIFT/masks'),
    'HRSOD': ('thin_object_detection/HRSOD/images', 'thin_object_detection/HRSOD/masks_max255'),
    'ThinObject5K-TE': ('thin_object_detection/ThinObject5K/images_test',
                        'thin_object_detection/ThinObject5K/masks_test'),
}


def make_hqseg_tree(root: Path) -> None:
    """One image per val subset (GT with values 0 / 1 / 255 mixed: GT > 0 is foreground),
    plus an MSRA_10K train folder with x.jpg next to x.png."""
    for i, (name, (img_dir, mask_dir)) in enumerate(HQ_VAL_DIRS.items()):
        write_image(root / img_dir / f'{name.lower()}_a.jpg', random_rgb(24, 32, i))
        gt = rect_mask(24, 32, 4, 12, 4 + i, 20 + i, value=255)
        gt[20:22, 0:4] = 1  # a faint (value 1) region is foreground too
        write_image(root / mask_dir / f'{name.lower()}_a.png', gt)
    write_image(root / 'cascade_psp/MSRA_10K/m1.jpg', random_rgb(16, 16, 9))
    write_image(root / 'cascade_psp/MSRA_10K/m1.png', rect_mask(16, 16, 2, 8, 2, 8))


def hqseg_expected(i: int) -> np.ndarray:
    gt = rect_mask(24, 32, 4, 12, 4 + i, 20 + i, value=1)
    gt[20:22, 0:4] = 1
    return gt


def make_davis_tree(root: Path) -> None:
    for i, name in enumerate(('bear_00000', 'boat_00010')):
        write_image(root / 'img' / f'{name}.jpg', random_rgb(20, 30, i))
        write_image(root / 'gt' / f'{name}.png', rect_mask(20, 30, 5, 15, 3 + i, 20 + i))


def grabcut_gt() -> np.ndarray:
    """255 object, a 128 unknown band around it, 0 background."""
    gt = rect_mask(30, 30, 6, 24, 6, 24, value=128)
    gt[8:22, 8:22] = 255
    return gt


def make_grabcut_tree(root: Path) -> None:
    write_image(root / 'data_GT' / 'flower.jpg', random_rgb(30, 30, 1))
    write_image(root / 'data_GT' / 'banana1.bmp', random_rgb(30, 30, 2))
    for name in ('flower', 'banana1'):
        write_image(root / 'boundary_GT' / f'{name}.bmp', grabcut_gt())


def make_berkeley_tree(root: Path) -> None:
    write_image(root / 'images' / '21077.jpg', random_rgb(20, 24, 3))
    write_image(root / 'masks' / '21077.png', rect_mask(20, 24, 2, 10, 2, 10))


def make_folder_tree(root: Path) -> None:
    """Indexed naming: a has 2 instance files, b has 1, c has none (skipped)."""
    for name, seed in (('a', 1), ('b', 2), ('c', 3)):
        write_image(root / 'images' / f'{name}.jpg', random_rgb(16, 20, seed))
    write_image(root / 'masks' / 'a_0.png', rect_mask(16, 20, 0, 8, 0, 8))
    write_image(root / 'masks' / 'a_1.png', rect_mask(16, 20, 8, 16, 10, 20))
    write_image(root / 'masks' / 'b_0.png', rect_mask(16, 20, 2, 6, 2, 6))


def dataset_configs(root: Path) -> dict:
    """Registered dataset name -> config reading a fixture tree built under ``root``."""
    make_coco_tree(root / 'coco')
    make_lvis_tree(root / 'coco')
    make_panoptic_tree(root / 'coco')
    make_hqseg_tree(root / 'hq')
    make_davis_tree(root / 'davis')
    make_grabcut_tree(root / 'grabcut')
    make_berkeley_tree(root / 'berkeley')
    make_folder_tree(root / 'folder')
    return dict(
        CocoInteractiveDataset=dict(data_root=str(root / 'coco'), min_area=100),
        CocoPanopticInteractiveDataset=dict(data_root=str(root / 'coco'), min_area=100),
        LvisInteractiveDataset=dict(data_root=str(root / 'coco'), min_area=100),
        HQSeg44KDataset=dict(data_root=str(root / 'hq')),
        DavisDataset=dict(data_root=str(root / 'davis')),
        GrabCutDataset=dict(data_root=str(root / 'grabcut')),
        BerkeleyDataset=dict(data_root=str(root / 'berkeley')),
        FolderDataset=dict(data_root=str(root / 'folder'), naming='indexed'),
        SyntheticHighResDataset=dict(num_images=2, image_size=(48, 64), min_object_pixels=16),
    )
