"""COCO instance and panoptic annotations as interactive-segmentation data.

Layout (``data_root``)::

    coco/
      annotations/
        instances_train2017.json          # CocoInteractiveDataset
        panoptic_train2017.json           # CocoPanopticInteractiveDataset
        panoptic_train2017/000000000009.png ...   (unzipped panoptic PNGs)
      train2017/000000000009.jpg ...
      val2017/...

Objects: every non-crowd annotation (instances) or segment (panoptic) whose ``area``
field is at least ``min_area`` pixels. Crowd annotations (``iscrowd=1``) are never
targets; with ``crowd_as_ignore=True`` their pixels are marked 255 (ignore) in every
target mask wherever the target itself is background, so a crowd of people is not
taught as "background" of a person next to it.
"""
from __future__ import annotations

import contextlib
import io as _stdio
import json
import os.path as osp
import warnings
from typing import List, Optional, Sequence

import numpy as np

from mmhrsam.registry import DATASETS
from .base import BaseInteractiveDataset, merge_data_prefix
from .io import IGNORE_VALUE, BadSampleError, progress, read_image


def segmentation_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """COCO ``segmentation`` (polygons, uncompressed or compressed RLE) -> (H, W) uint8 0/1.

    Polygons with fewer than 3 points are ignored (an annotation made only of those
    decodes to an empty mask).
    """
    try:
        return _decode_segmentation(segmentation, height, width)
    except BadSampleError:
        raise
    except Exception as e:  # pycocotools' C code raises bare TypeErrors/ValueErrors
        raise BadSampleError(f'cannot decode COCO segmentation ({e})') from e


def _decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    from pycocotools import mask as mask_utils  # lazy: only COCO-style data needs it
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get('counts'), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)  # uncompressed RLE
    elif isinstance(segmentation, dict):
        rle = dict(segmentation)
        if isinstance(rle['counts'], str):
            rle['counts'] = rle['counts'].encode('ascii')
    else:
        raise BadSampleError(f'unsupported COCO segmentation of type {type(segmentation).__name__}')
    with warnings.catch_warnings():
        # pycocotools 2.0.x's Cython decoder trips numpy 2's copy-keyword deprecation.
        warnings.simplefilter('ignore', DeprecationWarning)
        return np.ascontiguousarray(mask_utils.decode(rle), dtype=np.uint8)


def mark_ignore(masks: np.ndarray, ignore: Optional[np.ndarray]) -> np.ndarray:
    """Set ``IGNORE_VALUE`` in masks (N, H, W) where ``ignore`` (H, W) is set and the
    mask is background."""
    if ignore is not None and ignore.any():
        masks[(masks == 0) & ignore[None].astype(bool)] = IGNORE_VALUE
    return masks


def load_coco_api(ann_file: str):
    """``pycocotools.coco.COCO`` of ``ann_file`` (its prints silenced)."""
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(_stdio.StringIO()):
        return COCO(ann_file)


@DATASETS.register_module()
class CocoInteractiveDataset(BaseInteractiveDataset):
    """COCO instance annotations (polygons and RLE) read with pycocotools.

    Args:
        ann_file (str): instances json, relative to ``data_root``.
        data_prefix (dict): ``img_path`` (or mmdet's ``img``): image folder relative to
            ``data_root``.
        min_area (float): keep objects whose annotation ``area`` is at least this many
            pixels (1000, as RITM/SimpleClick train on COCO+LVIS).
        crowd_as_ignore (bool): mark crowd regions as ignore in target masks.
        **kwargs: :class:`BaseInteractiveDataset` arguments (``data_root``, ``pipeline``,
            ``test_mode``, ...).
    """

    def __init__(self,
                 ann_file: str = 'annotations/instances_train2017.json',
                 data_prefix: Optional[dict] = None,
                 min_area: float = 1000,
                 crowd_as_ignore: bool = False,
                 **kwargs):
        self.min_area = min_area
        self.crowd_as_ignore = crowd_as_ignore
        super().__init__(ann_file=ann_file,
                         data_prefix=merge_data_prefix(dict(img_path='train2017/'), data_prefix),
                         **kwargs)

    def image_file_name(self, image: dict) -> str:
        """Image path relative to ``data_prefix['img_path']`` of a json ``images`` entry."""
        return image['file_name']

    def keep_annotation(self, ann: dict) -> bool:
        return (not ann.get('iscrowd', 0) and ann.get('area', 0) >= self.min_area
                and bool(ann.get('segmentation')))

    def load_image_infos(self) -> List[dict]:
        coco = load_coco_api(self.ann_file)
        infos = []
        for img_id in progress(sorted(coco.imgs), f'indexing {osp.basename(self.ann_file)}'):
            image = coco.imgs[img_id]
            anns = coco.imgToAnns.get(img_id, [])
            instances = [dict(instance_id=str(a['id']), segmentation=a['segmentation'])
                         for a in anns if self.keep_annotation(a)]
            crowd = [a['segmentation'] for a in anns
                     if self.crowd_as_ignore and a.get('iscrowd', 0) and a.get('segmentation')]
            infos.append(dict(img_id=str(img_id),
                              img_path=osp.join(self.data_prefix['img_path'],
                                                self.image_file_name(image)),
                              height=int(image['height']), width=int(image['width']),
                              instances=instances, crowd_segmentations=crowd))
        return infos

    def read_masks(self, info: dict) -> np.ndarray:
        height, width = info['height'], info['width']
        try:
            masks = np.stack([segmentation_to_mask(inst['segmentation'], height, width)
                              for inst in info['instances']])  # (N, H, W)
            ignore = None
            if info.get('crowd_segmentations'):
                ignore = np.any([segmentation_to_mask(s, height, width)
                                 for s in info['crowd_segmentations']], axis=0)
        except BadSampleError as e:
            raise BadSampleError(f'image {info["img_id"]} of {self.ann_file}: {e}') from e
        return mark_ignore(masks, ignore)


@DATASETS.register_module()
class CocoPanopticInteractiveDataset(BaseInteractiveDataset):
    """COCO panoptic annotations: every segment (thing or stuff) is an object.

    Segment ids are decoded from the RGB PNGs as ``R + 256 G + 256^2 B``.

    Args:
        ann_file (str): panoptic json, relative to ``data_root``.
        data_prefix (dict): ``img_path``: image folder; ``seg_path``: PNG folder (``img``
            and ``seg`` accepted too).
        min_area (float): keep segments whose ``area`` is at least this many pixels.
        things_only (bool): only segments of ``isthing`` categories.
        crowd_as_ignore (bool): mark crowd segments as ignore in target masks.
        **kwargs: :class:`BaseInteractiveDataset` arguments.
    """

    def __init__(self,
                 ann_file: str = 'annotations/panoptic_train2017.json',
                 data_prefix: Optional[dict] = None,
                 min_area: float = 1000,
                 things_only: bool = False,
                 crowd_as_ignore: bool = False,
                 **kwargs):
        self.min_area = min_area
        self.things_only = things_only
        self.crowd_as_ignore = crowd_as_ignore
        defaults = dict(img_path='train2017/', seg_path='annotations/panoptic_train2017/')
        super().__init__(ann_file=ann_file, data_prefix=merge_data_prefix(defaults, data_prefix),
                         **kwargs)

    def _keep(self, segment: dict, thing_ids: set) -> bool:
        return (not segment.get('iscrowd', 0) and segment.get('area', 0) >= self.min_area
                and (not self.things_only or segment['category_id'] in thing_ids))

    def load_image_infos(self) -> List[dict]:
        with open(self.ann_file) as f:
            data = json.load(f)
        thing_ids = {c['id'] for c in data.get('categories', []) if c.get('isthing', 1)}
        images = {img['id']: img for img in data['images']}
        infos = []
        for ann in progress(sorted(data['annotations'], key=lambda a: a['image_id']),
                            f'indexing {osp.basename(self.ann_file)}'):
            image = images[ann['image_id']]
            segments = ann['segments_info']
            infos.append(dict(
                img_id=str(ann['image_id']),
                img_path=osp.join(self.data_prefix['img_path'], image['file_name']),
                seg_path=osp.join(self.data_prefix['seg_path'], ann['file_name']),
                instances=[dict(instance_id=str(s['id'])) for s in segments
                           if self._keep(s, thing_ids)],
                crowd_ids=[int(s['id']) for s in segments
                           if self.crowd_as_ignore and s.get('iscrowd', 0)]))
        return infos

    def mask_source(self, info: dict) -> str:
        return info['seg_path']

    def read_masks(self, info: dict) -> np.ndarray:
        rgb = read_image(info['seg_path']).astype(np.int32)  # (H, W, 3)
        segment_ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]  # (H, W)
        wanted = np.array([int(inst['instance_id']) for inst in info['instances']])
        masks = (segment_ids[None] == wanted[:, None, None]).astype(np.uint8)  # (N, H, W)
        ignore = np.isin(segment_ids, info['crowd_ids']) if info['crowd_ids'] else None
        return mark_ignore(masks, ignore)


__all__: Sequence[str] = ['CocoInteractiveDataset', 'CocoPanopticInteractiveDataset',
                          'segmentation_to_mask']
