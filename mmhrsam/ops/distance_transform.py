"""Exact, batched squared Euclidean distance transform in pure torch (CPU or CUDA).

``squared_distance_transform(mask)[b, y, x]`` is the squared distance from pixel
``(y, x)`` to the nearest ``False`` pixel of ``mask[b]``, where the image is surrounded
by a virtual 1-pixel ring of ``False`` (the image edge counts as boundary, as when the
mask is zero-padded by 1 before the transform and cropped after). ``False`` pixels map
to 0. All arithmetic is on integers, so equal distances compare equal and distinct ones
never merge, at any image size (float32 EDTs merge distinct distances at 4K).

Method (separable, Saito-Toriwaki / Meijster style, vectorized):

1. Column pass, O(HW): ``g(y, x)`` = distance along column ``x`` to the nearest zero
   (or the border), from cumulative max/min of the indices of zero pixels.
2. Row pass: ``D2(y, x) = min_d d^2 + g(y, x + d)^2``, initialised with ``d = 0`` and the
   left/right border. Offsets are visited in increasing ``|d|``; a pixel whose current
   value is ``<= d^2`` can no longer improve, so after each chunk of offsets the work is
   cropped to the bounding box of the pixels still "active" (value ``> d^2``), and the
   loop ends when none is left, i.e. after ``max D`` offsets (``max D`` = the largest
   distance in the batch).

Cost: the column pass is a few O(BHW) ops. The row pass does 4 elementwise ops per
offset on the active box; for a disk of radius r the box shrinks from 2r to 0, so about
``4 * (4/3) r^3`` element-ops (r = 400: ~3e8) instead of ``4 * r * HW``. Memory: a few
int32 (B, H, W) buffers, nothing per offset (offsets are applied one at a time
in place). The work is first cropped to the batch's bounding box of ``True`` pixels,
so small regions in large images are cheap. GPU syncs: one per chunk of offsets.
Measured on 2 CPU threads, 1024² image: disk r = 200 / 400 / 500 ≈ 0.015 / 0.07 / 0.11 s,
all-True image 0.15 s (scipy's EDT on the 400-disk: ~0.07 s).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

#: Offsets applied between two checks of the active box (one host sync per check).
DEFAULT_CHUNK = 8

Box = Tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open


def _bounding_box(active: Tensor) -> Optional[Box]:
    """Half-open box of the ``True`` pixels of ``active`` (B, H, W) over the whole batch.

    Args:
        active (Tensor): bool (B, H, W).

    Returns:
        Optional[Box]: ``(y0, y1, x0, x1)`` or None when no pixel is set.
    """
    rows = active.any(dim=2).any(dim=0)  # (H,)
    cols = active.any(dim=1).any(dim=0)  # (W,)
    ys = torch.nonzero(rows).flatten()
    if ys.numel() == 0:
        return None
    xs = torch.nonzero(cols).flatten()
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def _column_distance(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Distance along each column to the nearest ``False`` pixel or the border.

    Args:
        mask (Tensor): bool (B, H, W).
        dtype (torch.dtype): integer dtype of the result.

    Returns:
        Tensor: (B, H, W) of ``dtype``; 0 on ``False`` pixels.
    """
    h = mask.shape[1]
    idx = torch.arange(h, device=mask.device, dtype=dtype).view(1, h, 1)
    # Index of the last zero at or above each pixel (-1: the virtual top border) ...
    above = torch.where(mask, torch.full_like(idx, -1), idx).cummax(dim=1).values
    # ... and of the first zero at or below it (h: the virtual bottom border).
    below = torch.where(mask, torch.full_like(idx, h), idx).flip(1).cummin(dim=1).values.flip(1)
    return torch.minimum(idx - above, below - idx)


def _relax_offset(best: Tensor, g2: Tensor, d: int, box: Box) -> None:
    """``best = min(best, d^2 + g2(x - d), d^2 + g2(x + d))`` in place inside ``box``.

    Neighbours outside the image are skipped: the border term is already in ``best``.

    Args:
        best (Tensor): (B, H, W) running squared distances, updated in place.
        g2 (Tensor): (B, H, W) squared column distances.
        d (int): offset, >= 1.
        box (Box): region of ``best`` to update.
    """
    y0, y1, x0, x1 = box
    w = best.shape[2]
    lo = max(x0, d)  # pixels whose left neighbour x - d is inside the image
    if lo < x1:
        best[:, y0:y1, lo:x1].clamp_(max=g2[:, y0:y1, lo - d:x1 - d] + d * d)
    hi = min(x1, w - d)  # pixels whose right neighbour x + d is inside the image
    if x0 < hi:
        best[:, y0:y1, x0:hi].clamp_(max=g2[:, y0:y1, x0 + d:hi + d] + d * d)


def _row_pass(g: Tensor, chunk: int) -> Tensor:
    """Exact 2-D squared distances from column distances (step 2 of the module doc).

    Args:
        g (Tensor): (B, H, W) integer column distances.
        chunk (int): offsets applied between two re-crops of the active box.

    Returns:
        Tensor: (B, H, W) squared distances, dtype of ``g``.
    """
    w = g.shape[2]
    g2 = g * g
    x = torch.arange(w, device=g.device, dtype=g.dtype)
    border = torch.minimum((x + 1) ** 2, (w - x) ** 2)  # (W,) to the left/right ring
    best = torch.minimum(g2, border)
    box: Optional[Box] = (0, g.shape[1], 0, w)
    d = 1
    while True:
        y0, y1, x0, x1 = box
        # The active set only shrinks (best decreases, d grows): search the last box.
        sub = _bounding_box(best[:, y0:y1, x0:x1] > d * d)
        if sub is None:
            return best
        box = (y0 + sub[0], y0 + sub[1], x0 + sub[2], x0 + sub[3])
        for off in range(d, min(d + chunk, w)):
            _relax_offset(best, g2, off, box)
        d += chunk


def squared_distance_transform(mask: Tensor, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Exact squared Euclidean distance to the nearest ``False`` pixel or the image border.

    Args:
        mask (Tensor): bool (B, H, W), any device.
        chunk (int): offsets of the row pass between two host syncs. Defaults to 8.

    Returns:
        Tensor: int64 (B, H, W); 0 on ``False`` pixels, 1 on ``True`` pixels next to a
        ``False`` pixel or on the image edge.
    """
    if mask.dim() != 3 or mask.dtype != torch.bool:
        raise ValueError(f'mask must be a bool (B, H, W) tensor, got {mask.dtype} '
                         f'{tuple(mask.shape)}')
    out = torch.zeros(mask.shape, dtype=torch.int64, device=mask.device)
    box = _bounding_box(mask)
    if box is None:
        return out
    # Crop to the True pixels plus a 1-pixel margin: the margin is False (or the image
    # edge, where the virtual border is real), so nothing beyond it can be nearer.
    h, w = mask.shape[1:]
    y0, y1, x0, x1 = max(box[0] - 1, 0), min(box[1] + 1, h), max(box[2] - 1, 0), min(box[3] + 1, w)
    sub = mask[:, y0:y1, x0:x1]
    # int32 halves memory traffic; squared distances stay < 2^31 up to ~30k pixels a side.
    dtype = torch.int32 if max(h, w) < 30000 else torch.int64
    out[:, y0:y1, x0:x1] = _row_pass(_column_distance(sub, dtype), chunk)
    return out
