"""Click simulation on numpy masks (SPEC §5 and §6), one (H, W) sample at a time.

Evaluation rule (``next_click``), that of RITM / SimpleClick written from the SPEC:

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

The batched torch twins are in :mod:`mmhrsam.structures.click_sampling`.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from scipy import ndimage

Click = Tuple[int, int, bool]  # (y, x, is_positive)


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
    """The next evaluation click (SPEC §6), see the module docstring for the rule.

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


def sample_click(pred: np.ndarray, gt: np.ndarray, clicked: Optional[np.ndarray] = None,
                 rng: Optional[np.random.Generator] = None, first: bool = False, *,
                 valid: Optional[np.ndarray] = None) -> Optional[Click]:
    """A training click (SPEC §5): exact rule when ``first``, else sampled near the centre.

    Args:
        pred (np.ndarray): bool (H, W) current prediction (empty for the first click).
        gt (np.ndarray): bool (H, W) ground truth.
        clicked (np.ndarray, optional): bool (H, W) pixels already clicked.
        rng (np.random.Generator, optional): source of randomness. Defaults to a fresh
            unseeded generator.
        first (bool): use the exact evaluation rule. Defaults to False.
        valid (np.ndarray, optional): bool (H, W) pixels that may be clicked.

    Returns:
        Optional[Click]: ``(y, x, is_positive)`` or None when no error pixel is left.
    """
    if first:
        return next_click(pred, gt, clicked, valid=valid)
    d2, positive = _choose_region(*_error_maps(pred, gt, clicked, valid))
    max_d2 = int(d2.max())
    if max_d2 == 0:
        return None
    # DT > max/1.7  <=>  DT^2 * 1.7^2 > max^2, exact on integers (1.7^2 = 289/100).
    candidates = np.flatnonzero(289 * d2 > 100 * max_d2)
    rng = np.random.default_rng() if rng is None else rng
    y, x = divmod(int(candidates[rng.integers(candidates.size)]), d2.shape[1])
    return y, x, positive

