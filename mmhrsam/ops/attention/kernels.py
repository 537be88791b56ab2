"""Block-diagonal attention kernels and their backend table.

Every backend computes the same thing: for queries and keys/values already put in group
order by a :class:`~.index_maps.TokenPartition`, softmax attention inside each group.

- ``sdpa`` (any device): groups bucketed by size, one dense
  ``scaled_dot_product_attention`` call per size (KV-padded windows: a single call).
- ``flex`` (CUDA; CPU eager, forward only): PyTorch FlexAttention with a
  block-diagonal ``BlockMask``.
- ``xformers`` (CUDA, optional package): ``memory_efficient_attention`` with a
  ``BlockDiagonalMask``, the original implementation's kernel.
- ``reference`` (any device): explicit per-group loop, for tests.

Which one runs is decided by :data:`ATTENTION_BACKENDS` under the rule of
:mod:`mmhrsam.ops.switch`; ``auto`` falls back to ``sdpa``, which runs anywhere. It is
the fastest exact backend measured (``docs/benchmarks.md``: 0.29 ms against
FlexAttention's 0.53 ms for Flash Swin at 128² tokens on an H100).
Optional packages are imported only when their backend is used.
"""
from __future__ import annotations

import functools
import warnings
import weakref
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..switch import Backend, BackendTable, BackendUnavailableError
from .index_maps import TokenPartition


# --------------------------------------------------------------------------- reference
def reference_attention(q: Tensor, k: Tensor, v: Tensor, part: TokenPartition, scale: float) -> Tensor:
    """Per-group loop with an explicit softmax. q: (B, Lq, H, d), k/v: (B, Lkv, H, d)."""
    out = torch.empty_like(q)
    qs = ks = 0
    for lq, lk in zip(part.q_lengths, part.kv_lengths):
        qg, kg, vg = q[:, qs:qs + lq], k[:, ks:ks + lk], v[:, ks:ks + lk]
        attn = torch.einsum('bqhd,bkhd->bhqk', qg.float(), kg.float()) * scale
        out[:, qs:qs + lq] = torch.einsum('bhqk,bkhd->bqhd', attn.softmax(-1), vg.float()).to(q.dtype)
        qs, ks = qs + lq, ks + lk
    return out


# --------------------------------------------------------------------------- sdpa
def sdpa_attention(q: Tensor, k: Tensor, v: Tensor, part: TokenPartition, scale: float,
                   out_index: Optional[Tensor] = None) -> Tensor:
    """One dense SDPA call per run of equal-sized groups (see ``TokenPartition.buckets``).

    With ``out_index`` each bucket's output is scattered straight to its rows, which
    saves the concatenation of buckets and the reorder that would follow it.
    """
    B, Lq, H, d = q.shape
    out = None if out_index is None else q.new_empty(B, int(out_index.numel()), H, d)
    outs, qs, ks = [], 0, 0
    for n, lq, lk in part.buckets:
        # (B, n*l, H, d) -> (B*n, H, l, d): views only, the batch dim is never mixed with groups.
        qb = q[:, qs:qs + n * lq].reshape(B * n, lq, H, d).transpose(1, 2)
        kb = k[:, ks:ks + n * lk].reshape(B * n, lk, H, d).transpose(1, 2)
        vb = v[:, ks:ks + n * lk].reshape(B * n, lk, H, d).transpose(1, 2)
        ob = F.scaled_dot_product_attention(qb, kb, vb, scale=scale).transpose(1, 2).reshape(B, n * lq, H, d)
        if out is None:
            outs.append(ob)
        else:
            out[:, out_index[qs:qs + n * lq]] = ob
        qs, ks = qs + n * lq, ks + n * lk
    if out is not None:
        return out
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


# --------------------------------------------------------------------------- flex
@functools.lru_cache(maxsize=None)
def _flex_module():
    try:
        from torch.nn.attention import flex_attention as flex
    except ImportError as e:  # torch < 2.5
        raise BackendUnavailableError(
            "attention backend 'flex' needs PyTorch >= 2.5 (torch.nn.attention.flex_attention); "
            f"this is torch {torch.__version__}. Install a newer torch or use backend='sdpa'.") from e
    return flex


@functools.lru_cache(maxsize=None)
def _compiled_flex_attention() -> Callable:
    # FlexAttention is only fast when compiled; eager mode materializes the scores. Every
    # grid / window / scale combination is a new static shape, and past dynamo's default
    # of 8 recompiles it would silently fall back to that eager path (hundreds of GiB at
    # 256² tokens), so the limit is raised for this function's many shapes.
    import torch._dynamo.config as dynamo_config
    for name in ('recompile_limit', 'cache_size_limit'):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), 256))
    return torch.compile(_flex_module().flex_attention, dynamic=False)


def group_ids(lengths, device) -> Tensor:
    """(sum(lengths),) int32 group number of every position."""
    lengths_t = torch.tensor(lengths, device=device)
    return torch.repeat_interleave(torch.arange(len(lengths), device=device, dtype=torch.int32), lengths_t)


# Keyed weakly by the (cached) partition object, then by device.
_block_masks: 'weakref.WeakKeyDictionary[TokenPartition, Dict[str, object]]' = weakref.WeakKeyDictionary()


def flex_block_mask(part: TokenPartition, device):
    """FlexAttention ``BlockMask`` allowing attention inside each group only (cached)."""
    masks = _block_masks.setdefault(part, {})
    if str(device) not in masks:
        flex = _flex_module()
        q_doc, kv_doc = group_ids(part.q_lengths, device), group_ids(part.kv_lengths, device)

        def same_group(b, h, q_idx, kv_idx):
            return q_doc[q_idx] == kv_doc[kv_idx]

        masks[str(device)] = flex.create_block_mask(
            same_group, B=None, H=None, Q_LEN=len(q_doc), KV_LEN=len(kv_doc), device=device)
    return masks[str(device)]


def flex_attention(q: Tensor, k: Tensor, v: Tensor, part: TokenPartition, scale: float) -> Tensor:
    args = (q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    if q.is_cuda:
        out = _compiled_flex_attention()(*args, block_mask=flex_block_mask(part, q.device), scale=scale)
        return out.transpose(1, 2)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise BackendUnavailableError("attention backend 'flex' has no backward on CPU; use 'sdpa' for training")
    with warnings.catch_warnings():  # eager CPU FlexAttention warns that it is unfused; it is for tests
        warnings.simplefilter('ignore', UserWarning)
        out = _flex_module().flex_attention(*args, block_mask=flex_block_mask(part, q.device), scale=scale)
    return out.transpose(1, 2)


# --------------------------------------------------------------------------- xformers
def _xformers_ops():
    try:
        import xformers.ops as xops
    except Exception as e:  # ImportError, or a binary built for another torch
        raise BackendUnavailableError(
            "attention backend 'xformers' needs the optional package xformers built for this "
            f"torch ({torch.__version__}): pip install xformers. Error: {e}") from e
    return xops


def xformers_block_mask(part: TokenPartition, batch_size: int):
    """``BlockDiagonalMask`` for the batch flattened into one sequence.

    Sample ``b``'s groups are the ``b``-th copy of the partition's groups, so no group
    can span two samples (the original implementation let windows of consecutive samples
    meet; ``docs/architecture.md``, "Differences from the original code").
    """
    from xformers.ops.fmha.attn_bias import BlockDiagonalMask
    return BlockDiagonalMask.from_seqlens(
        q_seqlen=list(part.q_lengths) * batch_size, kv_seqlen=list(part.kv_lengths) * batch_size)


def xformers_attention(q: Tensor, k: Tensor, v: Tensor, part: TokenPartition, scale: float) -> Tensor:
    xops = _xformers_ops()
    if not q.is_cuda:
        raise BackendUnavailableError("attention backend 'xformers' has no CPU kernels; use 'sdpa'")
    B, Lq, H, d = q.shape
    out = xops.memory_efficient_attention(
        q.reshape(1, B * Lq, H, d), k.reshape(1, -1, H, d), v.reshape(1, -1, H, d),
        attn_bias=xformers_block_mask(part, B), scale=scale)
    return out.reshape(B, Lq, H, d)


def flex_unavailable(q: Tensor) -> Optional[str]:
    """Why the flex backend cannot run on queries like ``q`` (None when it can)."""
    try:
        _flex_module()
    except BackendUnavailableError as e:
        return str(e)
    if not q.is_cuda and torch.is_grad_enabled() and q.requires_grad:
        return "attention backend 'flex' has no backward on CPU; use 'sdpa' for training"
    return None


def xformers_unavailable(q: Tensor) -> Optional[str]:
    """Why the xformers backend cannot run on queries like ``q`` (None when it can)."""
    if not q.is_cuda:
        return "attention backend 'xformers' has no CPU kernels; use 'sdpa'"
    if not _xformers_kernels_run(str(q.device)):
        return ("attention backend 'xformers' needs the optional package xformers built for this "
                f"torch ({torch.__version__}): pip install xformers")
    return None


def scattered(kernel: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``kernel`` with the ``out_index`` argument of the table: its group-order output is
    scattered to the rows ``out_index`` names (sdpa does this per bucket instead)."""

    @functools.wraps(kernel)
    def fn(q, k, v, part, scale, out_index=None):
        out = kernel(q, k, v, part, scale)
        if out_index is None:
            return out
        result = torch.empty_like(out)
        result[:, out_index] = out
        return result

    return fn


#: The attention backends: fn(q, k, v, part, scale, out_index) -> (B, Lq, H, d).
ATTENTION_BACKENDS = BackendTable(
    'attention', 'MMHRSAM_ATTENTION_BACKEND', {
        'reference': Backend(scattered(reference_attention)),
        'sdpa': Backend(sdpa_attention),
        'flex': Backend(scattered(flex_attention), flex_unavailable),
        'xformers': Backend(scattered(xformers_attention), xformers_unavailable),
    },
    auto_order=('sdpa', ))


def block_diagonal_attention(q: Tensor, k: Tensor, v: Tensor, part: TokenPartition, scale: float,
                             backend: str = 'auto', out_index: Optional[Tensor] = None) -> Tensor:
    """Attention inside each group of ``part``.

    Args:
        q (Tensor): (B, Lq, H, d) queries in the partition's group order.
        k (Tensor): (B, Lkv, H, d) keys in group order.
        v (Tensor): (B, Lkv, H, d) values in group order.
        part (TokenPartition): the groups.
        scale (float): softmax scale.
        backend (str): ``'auto'`` or a key of :data:`ATTENTION_BACKENDS`.
        out_index (Tensor, optional): (Lq,) destination row of each query's output; a
            permutation (typically ``part.q_index``, giving the original token order).

    Returns:
        Tensor: (B, Lq, H, d), in group order, or scattered by ``out_index``.

    Raises:
        BackendUnavailableError: an explicitly named backend cannot run on these inputs.
    """
    name = ATTENTION_BACKENDS.resolve(backend, q)
    return ATTENTION_BACKENDS.backends[name].fn(q, k, v, part, scale, out_index)


def available_backends(device) -> list:
    """Attention backends that can run on ``device`` here (``auto`` excluded)."""
    probe = torch.empty(0, device=device)
    return [name for name, b in ATTENTION_BACKENDS.backends.items() if b.unavailable(probe) is None]


@functools.lru_cache(maxsize=4)
def _xformers_kernels_run(device: str) -> bool:
    """xformers imports even when its kernels were built for another torch; try one call."""
    try:
        xops = _xformers_ops()
        t = torch.zeros(1, 8, 1, 64, device=device, dtype=torch.float16)
        xops.memory_efficient_attention(t, t, t)
        return True
    except Exception:  # noqa: BLE001  any failure means: not usable here
        return False
