"""LVIS v1 instance annotations (COCO images, denser and finer masks).

Layout (``data_root`` is the COCO root: LVIS v1 train and val both draw images from
COCO's ``train2017/`` and ``val2017/``)::

    coco/
      annotations/lvis_v1_train.json
      annotations/lvis_v1_val.json
      train2017/000000391895.jpg ...
      val2017/...

Images are located through their ``coco_url``
(``http://images.cocodataset.org/train2017/000000391895.jpg`` -> ``train2017/000000391895.jpg``),
falling back to ``file_name`` when a json has no ``coco_url``. LVIS has no crowd
annotations; the json is COCO-style, so the mechanics are :class:`CocoInteractiveDataset`'s.
"""
from __future__ import annotations

from typing import Optional

from mmhrsam.registry import DATASETS
from .base import merge_data_prefix
from .coco import CocoInteractiveDataset


@DATASETS.register_module()
class LvisInteractiveDataset(CocoInteractiveDataset):
    """LVIS v1 json read with pycocotools.

    Args:
        ann_file (str): LVIS json, relative to ``data_root``.
        data_prefix (dict): ``img_path`` (or ``img``): folder holding ``train2017/`` and ``val2017/``
            (the COCO root itself by default).
        min_area (float): keep objects whose ``area`` is at least this many pixels.
        **kwargs: :class:`BaseInteractiveDataset` arguments.
    """

    def __init__(self,
                 ann_file: str = 'annotations/lvis_v1_train.json',
                 data_prefix: Optional[dict] = None,
                 min_area: float = 1000,
                 **kwargs):
        super().__init__(ann_file=ann_file,
                         data_prefix=merge_data_prefix(dict(img_path=''), data_prefix),
                         min_area=min_area, crowd_as_ignore=False, **kwargs)

    def image_file_name(self, image: dict) -> str:
        url = image.get('coco_url')
        if url:
            return '/'.join(url.rstrip('/').split('/')[-2:])  # '<split>/<file>'
        return image['file_name']
