"""Click simulation on numpy masks (docs/evaluation_protocol.md), one (H, W) sample at a time.

Evaluation rule (``next_click``), that of RITM / SimpleClick as docs/evaluation_protocol.md states it:

* ``FN = gt & ~pred`` and ``FP = pred & ~gt``; already-clicked pixels and pixels outside
  ``valid`` are removed from both regions (so they act as boundary, like the image edge).
* Each region gets an exact Euclidean distance transform with a 1-pixel zero border.
* If ``max DT(FN) > max DT(FP)`` (strict) the click is positive, at a maximal-DT(FN)
  pixel; otherwise (ties included) negative, at a maximal-DT(FP) pixel; no click when
  both maxima are 0 (both regions empty).
* Ties among maximal pixels: the first in row-major order (smallest y, then smallest x),
  what ``np.argmax`` returns and what RITM's ``np.where(...)[0]`` picks.

Exactness: distances are compared as int64 *squared* distances computed from scipy's
exact feature transform (nearest-background indices), never as rounded floats.

Training rule (``sample_click``): the first click (empty prediction) follows the exact
rule; a later click picks the region as the exact rule does, then a pixel uniformly at
random among the region's pixels whose DT exceeds ``max DT / 1.7``, tested exactly on
integers as ``289 * DT^2 > 100 * max DT^2``.

The original implementation's rules (``protocol='original'``, see
docs/evaluation_protocol.md): :func:`original_click` clicks uniformly at random (a seeded
``random.Random``) among the pixels whose OpenCV float32 distance exceeds
``max / (1 + eps)``, and ``sample_click(..., threshold='original')`` keeps training
candidates with ``DT > max / (1.7 + eps)`` in float32 (eps: float32's machine epsilon), which
also keeps pixels exactly at ``max / 1.7``.

The batched torch twins are in :mod:`mmhrsam.structures.click_sampling`.
"""
from __future__ import annotations

import random
from typing import Optional, Tuple

import cv2
import numpy as np
from scipy import ndimage

Click = Tuple[int, int, bool]  # (y, x, is_positive)
#: float32 machine epsilon, added to the distance divisor by the original implementation.
FLOAT32_EPS = float(np.finfo(np.float32).eps)
#: Training clicks land deeper than max DT / 1.7 (the paper's constant).
TRAIN_INNER_K = 1.7
THRESHOLDS = ('exact', 'original')


def squared_distance_transform_np(region: np.ndarray) -> np.ndarray:
    """Exact squared distance to the nearest ``False`` pixel or the 1-pixel border ring.

    Args:
        region (np.ndarray): bool (H, W).

    Returns:
        np.ndarray: int64 (H, W), 0 outside ``region``.
    """
    padded = np.pad(region, 1)  # the image edge counts as boundary
    # The feature transform gives each pixel's nearest background pixel exactly; the
    # squared distance is then integer arithmetic (no float rounding anywhere).
    iy, ix = ndimage.distance_transform_edt(padded, return_distances=False, return_indices=True)
    yy, xx = np.indices(padded.shape)
    d2 = (iy - yy).astype(np.int64) ** 2 + (ix - xx).astype(np.int64) ** 2
    return d2[1:-1, 1:-1]


def _as_mask(array: Optional[np.ndarray], shape: Tuple[int, ...], name: str,
             default: bool) -> np.ndarray:
    """``array`` as a bool (H, W) array of ``shape``, or a constant one when None."""
    if array is None:
        return np.full(shape, default, dtype=bool)
    array = np.asarray(array)
    if array.shape != shape:
        raise ValueError(f'{name} has shape {array.shape}, expected {shape}')
    return array.astype(bool, copy=False)


def _error_maps(pred: np.ndarray, gt: np.ndarray, clicked: Optional[np.ndarray],
                valid: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Squared DT of the FN and FP regions, clicked / invalid pixels removed.

    Args:
        pred (np.ndarray): bool (H, W) current prediction.
        gt (np.ndarray): bool (H, W) ground truth.
        clicked (np.ndarray, optional): bool (H, W) pixels clicked so far.
        valid (np.ndarray, optional): bool (H, W) pixels that may be clicked.

    Returns:
        Tuple[np.ndarray, np.ndarray]: int64 (H, W) squared DTs of FN and FP.
    """
    gt = np.asarray(gt).astype(bool, copy=False)
    if gt.ndim != 2:
        raise ValueError(f'gt must be (H, W), got shape {gt.shape}')
    pred = _as_mask(pred, gt.shape, 'pred', False)
    allowed = ~_as_mask(clicked, gt.shape, 'clicked', False) & _as_mask(valid, gt.shape, 'valid', True)
    fn = gt & ~pred & allowed
    fp = pred & ~gt & allowed
    return squared_distance_transform_np(fn), squared_distance_transform_np(fp)


def _choose_region(fn_d2: np.ndarray, fp_d2: np.ndarray) -> Tuple[np.ndarray, bool]:
    """The region the exact rule clicks in: FN only if its max DT is strictly larger."""
    positive = bool(fn_d2.max() > fp_d2.max())
    return (fn_d2 if positive else fp_d2), positive


def next_click(pred: np.ndarray, gt: np.ndarray, clicked: Optional[np.ndarray] = None, *,
               valid: Optional[np.ndarray] = None) -> Optional[Click]:
    """The next evaluation click (docs/evaluation_protocol.md), see the module docstring for the rule.

    Args:
        pred (np.ndarray): bool (H, W) current prediction.
        gt (np.ndarray): bool (H, W) ground truth.
        clicked (np.ndarray, optional): bool (H, W) pixels already clicked; excluded
            from both error regions. Defaults to None (no click yet).
        valid (np.ndarray, optional): bool (H, W); pixels outside are never clicked and
            act as boundary. Defaults to None (all valid).

    Returns:
        Optional[Click]: ``(y, x, is_positive)`` as Python ints and bool, or None when
        no error pixel is left.
    """
    d2, positive = _choose_region(*_error_maps(pred, gt, clicked, valid))
    flat = int(np.argmax(d2))  # first maximal pixel in row-major order
    if d2.flat[flat] == 0:
        return None
    y, x = divmod(flat, d2.shape[1])
    return y, x, positive


def original_threshold(max_dist: float, inner_k: float) -> np.float32:
    """``max / (inner_k + eps)`` as the original computes it: the factor rounded to float32,
    times the float32 maximum, rounded to float32 (torch's float32 tensor-times-scalar)."""
    return np.float32(max_dist) * np.float32(1.0 / (inner_k + FLOAT32_EPS))


def original_distance_transform(region: np.ndarray) -> np.ndarray:
    """The original's float32 distances: OpenCV's precise L2 transform of the region's
    bounding box with a one-pixel zero border (OpenCV's float32 values can differ from the
    correctly rounded ``sqrt`` by one unit in the last place, so ties are taken from it).

    Args:
        region (np.ndarray): bool (H, W).

    Returns:
        np.ndarray: float32 (H, W), 0 outside ``region``.
    """
    out = np.zeros(region.shape, dtype=np.float32)
    rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    if rows.size == 0:
        return out
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    padded = np.pad(region[box], 1).astype(np.uint8)
    out[box] = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    return out


def original_click(pred: np.ndarray, gt: np.ndarray, clicked: Optional[np.ndarray],
                   rng: random.Random, *, valid: Optional[np.ndarray] = None) -> Optional[Click]:
    """The next evaluation click of the original implementation.

    The region is chosen as by :func:`next_click` but on OpenCV's float32 distances
    (:func:`original_distance_transform`); the click is ``rng.choice`` over the region's
    pixels (row-major) whose distance exceeds :func:`original_threshold` ``(max, 1)``, i.e.
    the maximal pixels, ties broken at random.

    Args:
        pred (np.ndarray): bool (H, W) current prediction.
        gt (np.ndarray): bool (H, W) ground truth.
        clicked (np.ndarray, optional): bool (H, W) pixels already clicked.
        rng (random.Random): the seeded generator of the whole evaluation run.
        valid (np.ndarray, optional): bool (H, W) pixels that may be clicked.

    Returns:
        Optional[Click]: ``(y, x, is_positive)`` or None when no error pixel is left.
    """
    gt = np.asarray(gt).astype(bool, copy=False)
    allowed = ~_as_mask(clicked, gt.shape, 'clicked', False) & _as_mask(valid, gt.shape, 'valid', True)
    pred = _as_mask(pred, gt.shape, 'pred', False)
    fn = original_distance_transform(gt & ~pred & allowed)
    fp = original_distance_transform(pred & ~gt & allowed)
    fn_max, fp_max = fn.max(), fp.max()
    if fn_max == 0 and fp_max == 0:
        return None
    positive = bool(fn_max > fp_max)
    dist = fn if positive else fp
    ys, xs = np.nonzero(dist > original_threshold(dist.max(), 1.0))
    i = rng.choice(range(ys.size))
    return int(ys[i]), int(xs[i]), positive


def _candidates(d2: np.ndarray, max_d2: int, threshold: str) -> np.ndarray:
    """Training candidates: DT > max / 1.7 exactly, or the original's float32 rule."""
    if threshold == 'exact':
        # DT > max/1.7  <=>  DT^2 * 1.7^2 > max^2, exact on integers (1.7^2 = 289/100).
        return 289 * d2 > 100 * max_d2
    dist = np.sqrt(d2.astype(np.float32))  # float32, correctly rounded
    return dist > original_threshold(np.sqrt(np.float32(max_d2)), TRAIN_INNER_K)


def sample_click(pred: np.ndarray, gt: np.ndarray, clicked: Optional[np.ndarray] = None,
                 rng: Optional[np.random.Generator] = None, first: bool = False, *,
                 valid: Optional[np.ndarray] = None, threshold: str = 'exact') -> Optional[Click]:
    """A training click (docs/architecture.md): exact rule when ``first``, else sampled near the centre.

    Args:
        pred (np.ndarray): bool (H, W) current prediction (empty for the first click).
        gt (np.ndarray): bool (H, W) ground truth.
        clicked (np.ndarray, optional): bool (H, W) pixels already clicked.
        rng (np.random.Generator, optional): source of randomness. Defaults to a fresh
            unseeded generator.
        first (bool): use the exact evaluation rule. Defaults to False.
        valid (np.ndarray, optional): bool (H, W) pixels that may be clicked.
        threshold (str): ``'exact'``: DT > max / 1.7 exactly; ``'original'``: the original
            implementation's float32 ``DT > max / (1.7 + eps)``, which also keeps pixels at
            exactly max / 1.7.

    Returns:
        Optional[Click]: ``(y, x, is_positive)`` or None when no error pixel is left.
    """
    if threshold not in THRESHOLDS:
        raise ValueError(f'threshold must be one of {THRESHOLDS}, got {threshold!r}')
    if first:
        return next_click(pred, gt, clicked, valid=valid)
    d2, positive = _choose_region(*_error_maps(pred, gt, clicked, valid))
    max_d2 = int(d2.max())
    if max_d2 == 0:
        return None
    candidates = np.flatnonzero(_candidates(d2, max_d2, threshold))
    rng = np.random.default_rng() if rng is None else rng
    y, x = divmod(int(candidates[rng.integers(candidates.size)]), d2.shape[1])
    return y, x, positive

