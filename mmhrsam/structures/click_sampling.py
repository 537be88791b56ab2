"""Batched click simulation in torch, on the masks' own device (docs/evaluation_protocol.md).

Same rules and tie-breaking as :mod:`mmhrsam.structures.clicker` (see its docstring),
for (B, H, W) bool tensors, so that the click loop never leaves the GPU (no per-click
device-to-host copy of full masks). Distances are exact int64 squared distances from
:func:`mmhrsam.ops.distance_transform.squared_distance_transform`.

Both functions return ``(ys, xs, is_positive, has_click)``: int64 (B,), int64 (B,),
bool (B,), bool (B,). Samples without a click (no error pixel left) get ``ys = xs = -1``
and ``is_positive = False``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from mmhrsam.ops.distance_transform import squared_distance_transform

from .clicker import FLOAT32_EPS, THRESHOLDS, TRAIN_INNER_K

Clicks = Tuple[Tensor, Tensor, Tensor, Tensor]  # ys, xs, is_positive, has_click


def _check(mask: Optional[Tensor], like: Tensor, name: str, default: bool) -> Tensor:
    """``mask`` as a bool tensor shaped like ``like``, or a constant one when None."""
    if mask is None:
        return torch.full_like(like, default, dtype=torch.bool)
    if mask.shape != like.shape:
        raise ValueError(f'{name} has shape {tuple(mask.shape)}, expected {tuple(like.shape)}')
    return mask.to(device=like.device, dtype=torch.bool)


def _chosen_region(pred: Tensor, gt: Tensor, clicked: Optional[Tensor],
                   valid: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Squared DT of the region the exact rule clicks in, per sample.

    Args:
        pred (Tensor): bool (B, H, W).
        gt (Tensor): bool (B, H, W).
        clicked (Tensor, optional): bool (B, H, W) pixels already clicked.
        valid (Tensor, optional): bool (B, H, W) pixels that may be clicked.

    Returns:
        Tuple[Tensor, Tensor, Tensor]: int64 (B, H, W) squared DT of the chosen region,
        its int64 (B,) maximum, and bool (B,) whether it is the FN region (positive).
    """
    if gt.dim() != 3:
        raise ValueError(f'gt must be (B, H, W), got shape {tuple(gt.shape)}')
    gt = gt.to(torch.bool)
    pred = _check(pred, gt, 'pred', False)
    allowed = ~_check(clicked, gt, 'clicked', False) & _check(valid, gt, 'valid', True)
    # One transform call for both regions: (2B, H, W), FN first.
    d2 = squared_distance_transform(torch.cat([gt & ~pred & allowed, pred & ~gt & allowed]))
    fn_d2, fp_d2 = d2.chunk(2)
    fn_max, fp_max = fn_d2.flatten(1).amax(1), fp_d2.flatten(1).amax(1)
    positive = fn_max > fp_max  # strict: ties go to the FP region
    return torch.where(positive.view(-1, 1, 1), fn_d2, fp_d2), torch.maximum(fn_max, fp_max), positive


def _first_true(flags: Tensor) -> Tensor:
    """Index of the first ``True`` along the last dim of (B, N) ``flags`` (N if none)."""
    n = flags.shape[-1]
    idx = torch.arange(n, device=flags.device)
    return torch.where(flags, idx, n).amin(-1)


def _pick(selected: Tensor) -> Tuple[Tensor, Tensor]:
    """Row-major first selected pixel per sample, in two cheap steps (row, then column).

    Args:
        selected (Tensor): bool (B, H, W), at least one pixel set in each sample that
            matters (others give an arbitrary in-range pixel).

    Returns:
        Tuple[Tensor, Tensor]: int64 (B,) ys and xs.
    """
    b, h, _ = selected.shape
    ys = _first_true(selected.any(2)).clamp(max=h - 1)
    xs = _first_true(selected[torch.arange(b, device=selected.device), ys])
    return ys, xs.clamp(max=selected.shape[2] - 1)


def _finish(ys: Tensor, xs: Tensor, positive: Tensor, max_d2: Tensor) -> Clicks:
    """Blank out samples without any error pixel (``max_d2 == 0``)."""
    has_click = max_d2 > 0
    ys = torch.where(has_click, ys, -1)
    xs = torch.where(has_click, xs, -1)
    return ys, xs, positive & has_click, has_click


def next_click_torch(pred: Tensor, gt: Tensor, clicked: Optional[Tensor] = None,
                     valid: Optional[Tensor] = None) -> Clicks:
    """The next evaluation click of each sample, exactly as :func:`next_click`.

    Args:
        pred (Tensor): bool (B, H, W) current predictions.
        gt (Tensor): bool (B, H, W) ground truths.
        clicked (Tensor, optional): bool (B, H, W) pixels already clicked.
        valid (Tensor, optional): bool (B, H, W) pixels that may be clicked; others act
            as boundary.

    Returns:
        Clicks: ``(ys, xs, is_positive, has_click)``, see the module docstring.
    """
    d2, max_d2, positive = _chosen_region(pred, gt, clicked, valid)
    ys, xs = _pick(d2 == max_d2.view(-1, 1, 1))
    return _finish(ys, xs, positive, max_d2)


def _nth_true(flags: Tensor, n: Tensor) -> Tuple[Tensor, Tensor]:
    """Row-major position of the ``n``-th (0-based) ``True`` pixel of each sample.

    Args:
        flags (Tensor): bool (B, H, W).
        n (Tensor): int64 (B,), ``0 <= n < flags[b].sum()`` where it matters.

    Returns:
        Tuple[Tensor, Tensor]: int64 (B,) ys and xs.
    """
    b, h, w = flags.shape
    row_counts = flags.sum(2)  # (B, H)
    row_ends = row_counts.cumsum(1)
    # The row holding it is the number of rows that end at or before it.
    ys = (row_ends <= n.view(-1, 1)).sum(1).clamp(max=h - 1)
    batch = torch.arange(b, device=flags.device)
    n_in_row = n - (row_ends[batch, ys] - row_counts[batch, ys])
    xs = (flags[batch, ys].cumsum(1) <= n_in_row.view(-1, 1)).sum(1)
    return ys, xs.clamp(max=w - 1)


def _candidates(d2: Tensor, max_d2: Tensor, threshold: str) -> Tensor:
    """(B, H, W) training candidates, as :func:`mmhrsam.structures.clicker._candidates`."""
    if threshold == 'exact':
        # DT > max/1.7  <=>  289 DT^2 > 100 max^2, exact on integers.
        return 289 * d2 > 100 * max_d2.view(-1, 1, 1)
    # float32 throughout, like the original: a float32 tensor times a Python float is
    # computed in float32 with the factor rounded to float32.
    factor = 1.0 / (TRAIN_INNER_K + FLOAT32_EPS)
    threshold_dt = max_d2.float().sqrt() * factor  # (B,)
    return d2.float().sqrt() > threshold_dt.view(-1, 1, 1)


def sample_click_torch(pred: Tensor, gt: Tensor, clicked: Optional[Tensor] = None,
                       valid: Optional[Tensor] = None, first: bool = False,
                       generator: Optional[torch.Generator] = None, threshold: str = 'exact') -> Clicks:
    """A training click per sample (docs/architecture.md), as :func:`sample_click`.

    Args:
        pred (Tensor): bool (B, H, W) current predictions.
        gt (Tensor): bool (B, H, W) ground truths.
        clicked (Tensor, optional): bool (B, H, W) pixels already clicked.
        valid (Tensor, optional): bool (B, H, W) pixels that may be clicked.
        first (bool): use the exact evaluation rule. Defaults to False.
        generator (torch.Generator, optional): source of randomness, on any device;
            exactly B uniforms are drawn per call. Defaults to torch's default one.
        threshold (str): ``'exact'`` or ``'original'``, see :func:`sample_click`.

    Returns:
        Clicks: ``(ys, xs, is_positive, has_click)``.
    """
    if threshold not in THRESHOLDS:
        raise ValueError(f'threshold must be one of {THRESHOLDS}, got {threshold!r}')
    if first:
        return next_click_torch(pred, gt, clicked, valid)
    d2, max_d2, positive = _chosen_region(pred, gt, clicked, valid)
    candidates = _candidates(d2, max_d2, threshold)
    count = candidates.flatten(1).sum(1)
    gen_device = generator.device if generator is not None else d2.device
    u = torch.rand(d2.shape[0], generator=generator, device=gen_device, dtype=torch.float64)
    # floor(u * count) is uniform on 0..count-1; the clamp guards u * count rounding up.
    n = (u.to(d2.device) * count).floor().long().clamp(min=0)
    n = torch.minimum(n, (count - 1).clamp(min=0))
    ys, xs = _nth_true(candidates, n)
    return _finish(ys, xs, positive, max_d2)
