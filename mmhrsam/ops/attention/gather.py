"""Row gathers whose backward is a gather too.

FLA reorders tokens into groups with ``x[:, index]``. Autograd's backward of that indexing is
an accumulating ``index_put`` that sorts the indices first (it must allow repeated rows): in a
distillation step of HRSAM ViT-B at 1024², batch 8, on an H200 those backward kernels took
~14 ms of a 169 ms step. FLA's indices take every token at most once (pad slots aside), so the
gradient is the inverse gather.
"""
from __future__ import annotations

import torch
from torch import Tensor


class _GatherRows(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(inverse)
        return x[:, index]

    @staticmethod
    def backward(ctx, grad: Tensor):
        inverse, = ctx.saved_tensors
        zero = grad.new_zeros((grad.shape[0], 1) + tuple(grad.shape[2:]))  # row len(index): no gradient
        return torch.cat([grad, zero], dim=1)[:, inverse], None, None


def gather_rows(x: Tensor, index: Tensor, inverse: Tensor) -> Tensor:
    """``x[:, index]`` with the gradient ``grad_x[:, i] = grad[:, inverse[i]]``.

    Args:
        x (Tensor): (B, L, ...) rows to gather.
        index (Tensor): (M,) long rows of ``x``.
        inverse (Tensor): (L,) long: for each row ``i`` of ``x`` the one position ``j`` with
            ``index[j] == i`` whose gradient it receives, or ``M`` when it gets none. Positions
            ``j`` that ``inverse`` does not name (e.g. pad slots the caller overwrites, which
            point at an arbitrary row) must receive no gradient.

    Returns:
        Tensor: (B, M, ...).
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        return x[:, index]
    return _GatherRows.apply(x, index, inverse)
