"""Low-resolution mask logits to the original image size on the GPU: two bilinear resizes,
one Triton kernel each, the threshold fused into the second.

:func:`mmhrsam.structures.image_geometry.postprocess_logits` upsamples (1, 1, h, w) logits to
the padded square with ``F.interpolate`` (bilinear, ``align_corners=False``), crops the resized
image and resizes that to the original size. PyTorch's CUDA bilinear kernel takes ~0.1 ms per
call for these single-channel maps on an H200 (0.21 ms of a click with the threshold, for a
4000 x 3000 image from 512² logits), where writing the 12-MP mask and reading its sources
is ~0.01 ms at the GPU's memory bandwidth (computed, not measured); measured with the kernels
here: 0.10 ms per call, launches included (docs/benchmarks.md). The kernels compute the same
interpolation per output pixel (source index ``scale * (i + 0.5) - 0.5`` clamped at 0,
``scale = in / out`` in fp32, the upper neighbour clamped at the border, weights in the same
order), only for the cropped region, and write the mask as bool directly. Results
equal ``postprocess_logits`` up to fp32 rounding (fused multiply-adds may be contracted
differently).
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

try:  # never fail at import: callers check mask_resize_unavailable()
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001  ImportError, or a triton built for another torch
    triton = None

#: Triton runs its kernels in its CPU interpreter (set by the tests' subprocess).
INTERPRETED = triton is not None and os.environ.get('TRITON_INTERPRET', '0') == '1'
BLOCK = 1024

if triton is not None:
    @triton.jit
    def _bilinear(src_ptr, dst_ptr, H_in, W_in, H_out, W_out, src_row_stride, scale_h, scale_w,
                  AS_MASK: tl.constexpr, BLOCK: tl.constexpr):
        """dst (H_out, W_out), contiguous = bilinear resize of src (H_in, W_in) rows strided."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        inside = offs < H_out * W_out
        y = offs // W_out
        x = offs - y * W_out
        sy = tl.maximum(scale_h * (y.to(tl.float32) + 0.5) - 0.5, 0.0)
        sx = tl.maximum(scale_w * (x.to(tl.float32) + 0.5) - 0.5, 0.0)
        y0 = sy.to(tl.int32)
        x0 = sx.to(tl.int32)
        y1 = tl.where(y0 < H_in - 1, y0 + 1, y0)
        x1 = tl.where(x0 < W_in - 1, x0 + 1, x0)
        ly1 = sy - y0.to(tl.float32)
        lx1 = sx - x0.to(tl.float32)
        ly0 = 1.0 - ly1
        lx0 = 1.0 - lx1
        a = tl.load(src_ptr + y0 * src_row_stride + x0, mask=inside, other=0.0)
        b = tl.load(src_ptr + y0 * src_row_stride + x1, mask=inside, other=0.0)
        c = tl.load(src_ptr + y1 * src_row_stride + x0, mask=inside, other=0.0)
        d = tl.load(src_ptr + y1 * src_row_stride + x1, mask=inside, other=0.0)
        val = ly0 * (lx0 * a + lx1 * b) + ly1 * (lx0 * c + lx1 * d)
        if AS_MASK:
            tl.store(dst_ptr + offs, val > 0, mask=inside)
        else:
            tl.store(dst_ptr + offs, val, mask=inside)


def mask_resize_unavailable(x: Tensor) -> Optional[str]:
    """Why :func:`logits_to_original_size` cannot run on ``x`` (None when it can)."""
    if triton is None:
        return 'triton is not importable'
    if not (x.is_cuda or INTERPRETED):
        return 'the Triton kernels need a CUDA tensor'
    return None


def _scale(size_in: int, size_out: int) -> float:
    return float(np.float32(size_in) / np.float32(size_out))  # fp32 division, as PyTorch's kernel


def _resize(src: Tensor, out_size: Tuple[int, int], scale_from: Tuple[int, int], as_mask: bool) -> Tensor:
    """(H_in, W_in) fp32 map (unit column stride) -> (H_out, W_out); the scales are those of a
    resize of the full ``src`` to ``scale_from``, of which only the top-left ``out_size`` is made."""
    dst = torch.empty(out_size, dtype=torch.bool if as_mask else torch.float32, device=src.device)
    grid = (triton.cdiv(out_size[0] * out_size[1], BLOCK), )
    _bilinear[grid](src, dst, src.shape[0], src.shape[1], out_size[0], out_size[1], src.stride(0),
                    _scale(src.shape[0], scale_from[0]), _scale(src.shape[1], scale_from[1]),
                    AS_MASK=as_mask, BLOCK=BLOCK)
    return dst


def logits_to_original_size(low_res: Tensor, input_size: Tuple[int, int], pad_size: int,
                            original_size: Tuple[int, int], as_mask: bool) -> Tensor:
    """``postprocess_logits(low_res, input_size, pad_size, original_size)[0, 0]`` (``> 0`` when
    ``as_mask``) with the Triton kernels.

    Args:
        low_res (Tensor): (1, 1, h, w) low-resolution logits.
        input_size (tuple[int, int]): (h', w') of the resized image inside the padded square.
        pad_size (int): side of the padded square the logits cover.
        original_size (tuple[int, int]): (H, W) of the image.
        as_mask (bool): return the bool mask ``logits > 0`` instead of the fp32 logits.

    Returns:
        Tensor: (H, W) bool mask or fp32 logits on ``low_res``'s device.
    """
    reason = mask_resize_unavailable(low_res)
    if reason:
        raise RuntimeError(reason)
    if low_res.dim() != 4 or low_res.shape[:2] != (1, 1):
        raise ValueError(f'expected (1, 1, h, w) logits, got {tuple(low_res.shape)}')
    src = low_res[0, 0].float().contiguous()
    crop = _resize(src, tuple(input_size), (pad_size, pad_size), as_mask=False)  # the crop of the square
    return _resize(crop, tuple(original_size), tuple(original_size), as_mask=as_mask)


__all__ = ['logits_to_original_size', 'mask_resize_unavailable', 'INTERPRETED']
