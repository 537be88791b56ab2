"""Data transforms of the interactive-segmentation pipelines.

Results keys: ``img`` (H, W, 3) uint8 RGB; ``gt_masks`` (N, H, W) uint8 instance masks
with ``instance_ids``; after :class:`SampleObject` the single ``gt_mask`` (H, W) uint8 and
``instance_id``. Mask values: 1 object, 0 background, 255 ignore. Randomness comes from
numpy's global RNG, which MMEngine seeds per worker.

A training pipeline::

    [dict(type='SampleObject', min_area=1000), dict(type='ResizeLongestSide', long_side=1024),
     dict(type='PhotoMetricDistortion'), dict(type='RandomFlip', prob=0.5),
     dict(type='PackInteractiveInputs')]

A test pipeline (one instance per item): ``[ResizeLongestSide, PackInteractiveInputs]``.
Channel order (RGB/BGR) is not a transform: it is the data preprocessor's ``bgr_input``.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from mmhrsam.registry import TRANSFORMS
from mmhrsam.structures import InteractiveDataSample
from mmhrsam.structures.image_geometry import get_preprocess_shape


def _describe(results: dict) -> str:
    return str(results.get('img_path') or results.get('img_id', '<unknown image>'))


@TRANSFORMS.register_module()
class SampleObject(BaseTransform):
    """Pick one object of ``gt_masks`` uniformly at random.

    Sets ``gt_mask`` (H, W) and ``instance_id``, and drops ``gt_masks`` (later transforms
    then resize/flip one mask only). Returns None (the dataset fetches another image) with
    a warning when no object has at least ``min_area`` foreground pixels.

    Args:
        min_area (int): smallest usable object, in foreground (value 1) pixels; objects
            must have at least one pixel in any case.
    """

    def __init__(self, min_area: int = 0):
        self.min_area = min_area

    def transform(self, results: dict) -> Optional[dict]:
        masks = results['gt_masks']  # (N, H, W)
        areas = np.count_nonzero(masks.reshape(len(masks), -1) == 1, axis=1)  # (N,)
        usable = np.flatnonzero((areas > 0) & (areas >= self.min_area))
        if usable.size == 0:
            print_log(f'SampleObject: no object of {_describe(results)} has >= {self.min_area} '
                      f'pixels (areas {areas.tolist()}); fetching another image',
                      logger='current', level=logging.WARNING)
            return None
        choice = int(usable[np.random.randint(len(usable))])
        results['gt_mask'] = masks[choice]
        results['instance_id'] = str(results['instance_ids'][choice])
        del results['gt_masks']
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(min_area={self.min_area})'


def resize_image(img: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8: bilinear with antialiasing, as
    :func:`mmhrsam.apis.predictor.preprocess_image` (then rounded to uint8)."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size, mode='bilinear', align_corners=False, antialias=True)
    x = x[0].permute(1, 2, 0).round_().clamp_(0, 255)
    return np.ascontiguousarray(x.to(torch.uint8).numpy())


def resize_masks(masks: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """(..., H, W) uint8 masks -> (..., h, w), nearest neighbour (pixel centres), so
    values (255 ignore included) are preserved."""
    flat = masks.reshape((-1,) + masks.shape[-2:])
    out = [cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT) for m in flat]
    return np.stack(out).reshape(masks.shape[:-2] + tuple(size))


@TRANSFORMS.register_module()
class ResizeLongestSide(BaseTransform):
    """Resize the long side to ``long_side`` keeping the aspect ratio (SAM's rule).

    The size is :func:`mmhrsam.apis.predictor.get_preprocess_shape`; the image is
    resampled like the predictor does (bilinear, antialiased, then rounded to uint8),
    masks with nearest neighbour. Nothing is resampled when the size does not change.
    Records ``img_shape`` (h, w) and ``scale_factor`` (sy, sx) relative to ``ori_shape``.

    Args:
        long_side (int): target long side.
    """

    def __init__(self, long_side: int = 1024):
        if long_side <= 0:
            raise ValueError(f'long_side must be positive, got {long_side}')
        self.long_side = int(long_side)

    def transform(self, results: dict) -> dict:
        height, width = results['img'].shape[:2]
        size = get_preprocess_shape(height, width, self.long_side)
        if size != (height, width):
            results['img'] = resize_image(results['img'], size)
            for key in ('gt_masks', 'gt_mask'):
                if key in results:
                    results[key] = resize_masks(results[key], size)
        ori_h, ori_w = results.get('ori_shape', (height, width))
        results['img_shape'] = size
        results['scale_factor'] = (size[0] / ori_h, size[1] / ori_w)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(long_side={self.long_side})'


@TRANSFORMS.register_module()
class PhotoMetricDistortion(BaseTransform):
    """Random brightness, contrast, saturation and hue, each applied with ``prob``.

    Contrast comes before or after the HSV changes with equal probability (as in
    mmseg/mmdet's transform of the same name).

    Args:
        brightness_delta (float): brightness offset drawn from [-delta, delta].
        contrast_range (tuple[float, float]): contrast factor range.
        saturation_range (tuple[float, float]): saturation factor range.
        hue_delta (float): hue shift drawn from [-delta, delta], in OpenCV's 8-bit hue
            units (180 per turn).
        prob (float): probability of each distortion.
    """

    def __init__(self,
                 brightness_delta: float = 32,
                 contrast_range: Sequence[float] = (0.5, 1.5),
                 saturation_range: Sequence[float] = (0.5, 1.5),
                 hue_delta: float = 18,
                 prob: float = 0.5):
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(contrast_range)
        self.saturation_range = tuple(saturation_range)
        self.hue_delta = hue_delta
        self.prob = prob

    def _maybe(self) -> bool:
        return np.random.rand() < self.prob

    def _hsv(self, img: np.ndarray) -> np.ndarray:
        saturation = np.random.uniform(*self.saturation_range) if self._maybe() else None
        hue = np.random.uniform(-self.hue_delta, self.hue_delta) if self._maybe() else None
        if saturation is None and hue is None:
            return img
        hsv = cv2.cvtColor(np.clip(img, 0, 255) / 255.0, cv2.COLOR_RGB2HSV)  # H in [0, 360)
        if saturation is not None:
            hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 1)
        if hue is not None:
            hsv[..., 0] = (hsv[..., 0] + 2 * hue) % 360  # 8-bit hue units -> degrees
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0

    def transform(self, results: dict) -> dict:
        img = results['img'].astype(np.float32)  # (H, W, 3)
        if self._maybe():
            img += np.random.uniform(-self.brightness_delta, self.brightness_delta)
        contrast_first = np.random.rand() < 0.5
        contrast = np.random.uniform(*self.contrast_range) if self._maybe() else None
        if contrast_first and contrast is not None:
            img *= contrast
        img = self._hsv(img)
        if not contrast_first and contrast is not None:
            img *= contrast
        results['img'] = np.clip(np.round(img), 0, 255).astype(np.uint8)
        return results


@TRANSFORMS.register_module()
class RandomFlip(BaseTransform):
    """Flip the image and masks with probability ``prob``; records ``flip`` and
    ``flip_direction``.

    Args:
        prob (float): flip probability.
        direction (str): ``'horizontal'``, ``'vertical'`` or ``'diagonal'`` (both).
    """

    _AXES = dict(horizontal=(-1,), vertical=(-2,), diagonal=(-2, -1))

    def __init__(self, prob: float = 0.5, direction: str = 'horizontal'):
        if direction not in self._AXES:
            raise ValueError(f'direction must be one of {list(self._AXES)}, got {direction!r}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob
        self.direction = direction

    def transform(self, results: dict) -> dict:
        flip = bool(np.random.rand() < self.prob)
        if flip:
            axes = self._AXES[self.direction]
            # Image axes are (H, W, C): shift the mask axes (-2, -1) by one.
            results['img'] = np.flip(results['img'], [a - 1 for a in axes]).copy()
            for key in ('gt_masks', 'gt_mask'):
                if key in results:
                    results[key] = np.flip(results[key], axes).copy()
        results['flip'] = flip
        results['flip_direction'] = self.direction if flip else None
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob}, direction={self.direction!r})'


@TRANSFORMS.register_module()
class PackInteractiveInputs(BaseTransform):
    """Pack ``results`` into ``dict(inputs, data_samples)`` for the data preprocessor.

    * ``inputs``: (3, H, W) uint8 RGB tensor (contiguous);
    * ``data_samples``: :class:`InteractiveDataSample` with ``gt_mask`` (1, H, W) uint8
      (from ``gt_mask``, or from ``gt_masks`` holding exactly one mask as test-mode items
      do), ``teacher_embedding`` when present, and the meta keys (``img_shape``,
      ``scale_factor`` (1, 1) and ``flip`` False by default).

    Args:
        meta_keys (Sequence[str]): results keys copied into the sample's metainfo.
    """

    def __init__(self, meta_keys: Sequence[str] = ('img_id', 'instance_id', 'img_path',
                                                   'ori_shape', 'img_shape', 'scale_factor',
                                                   'flip')):
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def _gt_mask(results: dict) -> Tuple[np.ndarray, Optional[str]]:
        if 'gt_mask' in results:
            return results['gt_mask'], results.get('instance_id')
        masks = results.get('gt_masks')
        if masks is None or len(masks) != 1:
            count = 'no' if masks is None else len(masks)
            raise ValueError(f'PackInteractiveInputs: {count} masks for {_describe(results)}; '
                             'add SampleObject to a training pipeline (test-mode items hold '
                             'exactly one)')
        return masks[0], str(results['instance_ids'][0])

    def transform(self, results: dict) -> dict:
        img = results['img']  # (H, W, 3)
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))  # (3, H, W)
        gt_mask, instance_id = self._gt_mask(results)
        sample = InteractiveDataSample()
        sample.gt_mask = torch.from_numpy(np.ascontiguousarray(gt_mask, dtype=np.uint8))[None]
        if results.get('teacher_embedding') is not None:
            sample.teacher_embedding = torch.as_tensor(results['teacher_embedding'])
        meta = dict(img_shape=tuple(img.shape[:2]), scale_factor=(1.0, 1.0), flip=False,
                    instance_id=instance_id)
        meta.update({k: results[k] for k in self.meta_keys if k in results})
        for key in ('ori_shape', 'img_shape'):
            if key in meta:
                meta[key] = tuple(int(v) for v in meta[key])
        sample.set_metainfo({k: meta[k] for k in self.meta_keys if k in meta})
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
