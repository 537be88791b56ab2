"""Brute-force reference for the click rule and random test masks (tests only).

Independent of the code under test: no distance-transform algorithm, only the definition
(min over every non-region pixel and a virtual 1-pixel border ring) and explicit loops.
"""
from typing import Optional, Tuple

import numpy as np


def brute_sq_dt(region: np.ndarray) -> np.ndarray:
    """Squared distance of each region pixel to the nearest non-region or border-ring pixel.

    Args:
        region (np.ndarray): bool (H, W), small (all pairs are formed).

    Returns:
        np.ndarray: int64 (H, W), 0 outside the region.
    """
    h, w = region.shape
    framed = np.zeros((h + 2, w + 2), dtype=bool)  # the ring is outside the region
    framed[1:-1, 1:-1] = region
    zy, zx = np.nonzero(~framed)
    ys, xs = np.nonzero(region)
    out = np.zeros((h, w), dtype=np.int64)
    if ys.size:
        d2 = (ys[:, None] + 1 - zy[None]) ** 2 + (xs[:, None] + 1 - zx[None]) ** 2  # (n, m)
        out[ys, xs] = d2.min(axis=1)
    return out


def brute_regions(pred, gt, clicked=None, valid=None) -> Tuple[np.ndarray, np.ndarray]:
    """Brute-force squared DTs of the FN and FP regions."""
    allowed = np.ones_like(gt, dtype=bool)
    if clicked is not None:
        allowed &= ~clicked
    if valid is not None:
        allowed &= valid
    return brute_sq_dt(gt & ~pred & allowed), brute_sq_dt(pred & ~gt & allowed)


def brute_next_click(pred, gt, clicked=None, valid=None) -> Optional[Tuple[int, int, bool]]:
    """docs/evaluation_protocol.md's rule by hand: strict FN > FP, first maximal pixel scanning rows then columns."""
    fn, fp = brute_regions(pred, gt, clicked, valid)
    positive = fn.max() > fp.max()
    d2 = fn if positive else fp
    best, where = 0, None
    for y in range(d2.shape[0]):
        for x in range(d2.shape[1]):
            if d2[y, x] > best:  # strict: a later equal pixel never replaces the first
                best, where = d2[y, x], (y, x)
    return None if where is None else (where[0], where[1], bool(positive))


def random_blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Union of a few random disks and rectangles."""
    yy, xx = np.indices((h, w))
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        if rng.random() < 0.5:
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(1, max(h, w)) ** 2 / 4
        else:
            mask |= (abs(yy - cy) <= rng.integers(0, h)) & (abs(xx - cx) <= rng.integers(0, w))
    return mask


def random_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Blobs, random pixels, or their xor."""
    kind = rng.integers(3)
    if kind == 0:
        return random_blobs(rng, h, w)
    pixels = rng.random((h, w)) < rng.uniform(0.05, 0.95)
    return pixels if kind == 1 else pixels ^ random_blobs(rng, h, w)


def random_case(rng: np.random.Generator, h: int, w: int, extras: bool = True):
    """(pred, gt, clicked, valid): pred is a perturbed gt so that both error kinds occur."""
    gt = random_mask(rng, h, w)
    pred = gt ^ random_mask(rng, h, w) if rng.random() < 0.8 else random_mask(rng, h, w)
    if rng.random() < 0.15:
        pred = np.zeros_like(gt)
    clicked = rng.random((h, w)) < 0.05 if extras and rng.random() < 0.5 else None
    valid = ~random_blobs(rng, h, w) if extras and rng.random() < 0.3 else None
    return pred, gt, clicked, valid


def stack_cases(cases):
    """Cases of (pred, gt, clicked, valid) -> bool (B, H, W) tensors; None fields are
    filled with 'nothing clicked' / 'all valid' (or stay None when None everywhere)."""
    import torch
    pred, gt, clicked, valid = zip(*cases)
    fills = (None, None, np.zeros_like(gt[0]), np.ones_like(gt[0]))
    out = []
    for masks, fill in zip((pred, gt, clicked, valid), fills):
        if all(m is None for m in masks):
            out.append(None)
        else:
            out.append(torch.from_numpy(np.stack([fill if m is None else m for m in masks])))
    return out
