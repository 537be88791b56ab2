"""The base of every interactive-segmentation dataset.

A dataset lists images with references to their object (instance) annotations and
turns one index into ``results`` for the pipeline:

* ``img``: (H, W, 3) uint8 RGB;
* ``gt_masks``: (N, H, W) uint8 instance masks: 1 object, 0 background, 255 ignore;
* ``instance_ids``: list of N str, the id of each mask (unique within the image);
* ``img_id`` (str, unique per image), ``img_path`` (str, None for generated images),
  ``ori_shape`` = ``img_shape`` = (H, W), ``sample_idx``; in test mode also ``instance_id``.

Training (``test_mode=False``) has one item per image: the pipeline's ``SampleObject``
picks one object. Testing has one item per (image, instance): every object is evaluated
on its own, the item carries exactly that object's mask.

Data infos (``data_list`` entries) are dicts with ``img_id``, ``img_path`` and
``instances``: a list of dicts with at least ``instance_id`` plus whatever the dataset
needs to read the mask (``mask_path``, a COCO ``segmentation``, ...). ``instances`` may
be None when objects are only known after reading the sample (synthetic scenes in
training).
"""
from __future__ import annotations

import logging
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmhrsam.registry import DATASETS, TRANSFORMS
from .io import BadSampleError, check_mask_shapes, image_shape, read_image


def build_pipeline(pipeline: Sequence[Union[dict, Callable]]) -> List[Callable]:
    """Build transform configs from mmhrsam's TRANSFORMS whatever the default scope.

    mmengine's ``Compose`` builds from the root registry, which does not see mmhrsam's
    transforms unless the default scope is ``mmhrsam``; building here makes
    ``dict(type='SampleObject')`` work from any scope.
    """
    return [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in (pipeline or [])]


def merge_data_prefix(defaults: dict, data_prefix: Optional[dict]) -> dict:
    """``defaults`` updated with ``data_prefix``; mmdet-style keys (``img``, ``seg``) are
    read as MMEngine's (``img_path``, ``seg_path``)."""
    merged = dict(defaults)
    for key, value in (data_prefix or {}).items():
        merged[key if key.endswith('_path') else f'{key}_path'] = value
    return merged


@DATASETS.register_module()
class BaseInteractiveDataset(BaseDataset):
    """Abstract base: subclasses implement :meth:`load_image_infos` and :meth:`read_masks`.

    Args:
        ann_file (str): annotation file (joined with ``data_root`` when relative).
        metainfo (dict, optional): extra meta information.
        data_root (str): root folder of the dataset.
        data_prefix (dict): sub-folders, joined with ``data_root`` (``img_path``, ...).
        indices (int | Sequence[int], optional): keep only these items (or the first n).
        serialize_data (bool): store the data list as one numpy byte buffer (shared by
            dataloader workers).
        pipeline (list[dict | callable]): transforms.
        test_mode (bool): one item per instance and errors instead of skips.
        lazy_init (bool): defer loading the data list.
        max_refetch (int): how many other indices to try when a training item is bad.
    """

    #: Shared by every dataset (class-agnostic objects), so mmengine's ConcatDataset can
    #: mix them (it requires equal metainfo).
    METAINFO: dict = dict(classes=('object',))

    def __init__(self,
                 ann_file: str = '',
                 metainfo: Optional[dict] = None,
                 data_root: str = '',
                 data_prefix: Optional[dict] = None,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 max_refetch: int = 1000):
        super().__init__(ann_file=ann_file, metainfo=metainfo, data_root=data_root,
                         data_prefix=dict(img_path='') if data_prefix is None else data_prefix,
                         indices=indices, serialize_data=serialize_data,
                         pipeline=build_pipeline(pipeline), test_mode=test_mode,
                         lazy_init=lazy_init, max_refetch=max_refetch)

    # ------------------------------------------------------------------ to implement
    def load_image_infos(self) -> List[dict]:
        """One info per image: ``img_id``, ``img_path``, ``instances`` (see module doc)."""
        raise NotImplementedError(f'{type(self).__name__} must implement load_image_infos()')

    def read_masks(self, info: dict) -> np.ndarray:
        """(N, H, W) uint8 masks of ``info['instances']``, in that order."""
        raise NotImplementedError(f'{type(self).__name__} must implement read_masks()')

    def mask_source(self, info: dict) -> str:
        """Where the masks of ``info`` come from, for error messages."""
        paths = [str(inst['mask_path']) for inst in info.get('instances') or []
                 if 'mask_path' in inst]
        return ', '.join(paths) if paths else str(self.ann_file or 'the annotations')

    # ------------------------------------------------------------------ data list
    def load_data_list(self) -> List[dict]:
        infos = self.load_image_infos()
        if not self.test_mode:
            return infos
        items = []  # one per (image, instance)
        for info in infos:
            for inst in info['instances'] or []:
                items.append(dict(info, instances=[inst], instance_id=inst['instance_id']))
        return items

    def filter_data(self) -> List[dict]:
        """Drop images without any instance (kept when instances are unknown: None)."""
        return [info for info in self.data_list if info.get('instances') is None
                or len(info['instances']) > 0]

    # ------------------------------------------------------------------ loading
    def image_source(self, info: dict) -> str:
        if info.get('img_path'):
            return str(info['img_path'])
        return f'generated image {info["img_id"]}'

    def image_shape(self, index: int) -> Tuple[int, int]:
        """(H, W) of the image of item ``index`` (from the file header)."""
        return image_shape(self.get_data_info(index)['img_path'])

    def load_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of item ``index``; BadSampleError (a ValueError)
        naming the file when it is missing, unreadable or truncated."""
        return read_image(self.get_data_info(index)['img_path'])

    def load_masks(self, index: int) -> np.ndarray:
        """(N, H, W) uint8 instance masks of item ``index`` (in test mode N = 1), checked
        against the image size (BadSampleError naming both files otherwise)."""
        info = self.get_data_info(index)
        masks = self.read_masks(info)
        check_mask_shapes(masks, self.image_shape(index), self.image_source(info),
                          self.mask_source(info))
        return masks

    def get_instance_ids(self, index: int) -> List[str]:
        """Ids (str) of the masks :meth:`load_masks` returns, in the same order."""
        return [str(inst['instance_id']) for inst in self.get_data_info(index)['instances']]

    def load_sample(self, index: int) -> dict:
        """The ``results`` dict of item ``index`` before the pipeline (see module doc).

        Instances without any foreground pixel are dropped in training; a sample left
        with none (or, in test mode, an empty instance) raises :class:`BadSampleError`.
        """
        info = self.get_data_info(index)
        img = self.load_image(index)
        masks = self.load_masks(index)
        ids = self.get_instance_ids(index)
        if len(ids) != len(masks):
            raise RuntimeError(f'{type(self).__name__}: {len(masks)} masks but {len(ids)} ids')
        check_mask_shapes(masks, img.shape[:2], self.image_source(info), self.mask_source(info))
        has_object = (masks == 1).reshape(len(masks), -1).any(axis=1)
        if not has_object.all():
            empty = [i for i, ok in zip(ids, has_object) if not ok]
            if self.test_mode or not has_object.any():
                raise BadSampleError(f'instance(s) {empty} of {self.image_source(info)} have '
                                     f'empty masks (from {self.mask_source(info)})')
            masks, ids = masks[has_object], [i for i, ok in zip(ids, has_object) if ok]
        results = dict(img=img, gt_masks=masks, instance_ids=ids, img_id=str(info['img_id']),
                       img_path=info.get('img_path'), ori_shape=img.shape[:2],
                       img_shape=img.shape[:2], sample_idx=info['sample_idx'])
        if self.test_mode:
            results['instance_id'] = ids[0]
        return results

    def prepare_data(self, idx: int) -> Optional[dict]:
        """Load item ``idx`` and run the pipeline.

        A bad sample (unreadable file, size mismatch, no object) is skipped in training
        with a warning (None makes :class:`BaseDataset` fetch another index) and raises
        in test mode.
        """
        try:
            results = self.load_sample(idx)
        except BadSampleError as e:
            if self.test_mode:
                raise
            print_log(f'{type(self).__name__}: skipping item {idx}: {e}', logger='current',
                      level=logging.WARNING)
            return None
        return self.pipeline(results)
