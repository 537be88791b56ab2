"""The Flexible Local Attention layer shared by every attention variant."""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmhrsam.ops.attention import ATTENTION_BACKENDS, Grid, TokenPartition, block_diagonal_attention, cached_partition
from mmhrsam.ops.attention.gather import gather_rows

from ..layers.rope import AxialRoPE


@dataclass(frozen=True)
class AttentionInputs:
    """The queries and keys one attention layer hands to its kernel, for analysis.

    Row ``i`` of ``q`` attends to the keys of its group: groups are consecutive runs of
    ``partition.q_lengths`` query rows and ``partition.kv_lengths`` key rows. A query row
    whose ``partition.q_index`` equals ``partition.num_tokens`` is not a token (a KV-padded
    window's pad slot, or Plain Swin's zero padding): its output is dropped.

    Attributes:
        q (Tensor): (B, Lq, heads, d) queries in group order, RoPE applied.
        k (Tensor): (B, Lkv, heads, d) keys in group order, RoPE applied (pad-token keys
            included where the variant uses them).
        partition (TokenPartition): the groups and the token of every query / key row.
        scale (float): softmax scale of ``q @ k^T``.
        bias (Tensor, optional): (num_groups, lq, lkv) additive score bias of layouts whose
            groups all have the same size (Plain Swin's -inf roll mask); None for the others.
    """
    q: Tensor
    k: Tensor
    partition: TokenPartition
    scale: float
    bias: Optional[Tensor] = None


#: ``observer(layer_name, inputs)``, see :func:`observe_attention`.
AttentionObserver = Callable[[str, AttentionInputs], None]


class FlexibleLocalAttention(BaseModule):
    """Multi-head self-attention inside token groups given by an index mapping (FLA).

    ``forward`` reorders the tokens into group order, projects them with ``qkv``, runs
    block-diagonal attention, projects with ``proj`` and restores the original order.
    Subclasses only say which groups (:meth:`partition`). All variants share the
    parameter names ``qkv`` (Linear(C, 3C), output split as (3, heads, head_dim)),
    ``proj`` (Linear(C, C)) and, with KV-only padding, ``padding`` (1, C), so weights
    move between variants.

    The batch dimension is kept apart from the token dimension throughout, so samples
    of a batch never see each other's tokens (``docs/architecture.md``, "Differences from
    the original code").

    Args:
        embed_dim (int): channels C.
        num_heads (int): heads; ``embed_dim`` must be divisible by it.
        qkv_bias (bool): bias in ``qkv``.
        kv_padding (bool): own a learnable pad token that fills virtual key/value slots.
        backend (str): attention kernel, see :mod:`mmhrsam.ops.attention.kernels`; ``'auto'``
            never fails.
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self, embed_dim: int, num_heads: int, qkv_bias: bool = True, kv_padding: bool = False,
                 backend: str = 'auto', init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if embed_dim % num_heads:
            raise ValueError(f'embed_dim {embed_dim} is not divisible by num_heads {num_heads}')
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.backend = ATTENTION_BACKENDS.validate(backend)
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=qkv_bias)
        self.proj = nn.Linear(embed_dim, embed_dim)
        if kv_padding:
            self.padding = nn.Parameter(torch.empty(1, embed_dim))
            nn.init.trunc_normal_(self.padding, std=0.02)
        else:
            self.padding = None
        #: Called with the kernel's inputs on every forward while set (observe_attention).
        self.attention_observer: Optional[Callable[[AttentionInputs], None]] = None

    # ------------------------------------------------------------------ groups
    #: Index-map builder of the variant, a key of ``index_maps.PARTITION_BUILDERS``.
    partition_kind = 'global'

    def partition_params(self) -> dict:
        """Arguments of the index-map builder besides the grid."""
        return {}

    def partition(self, grids: Tuple[Grid, ...], device: str) -> TokenPartition:
        """The groups for tokens of ``grids`` laid end to end, on ``device`` (cached)."""
        return cached_partition(self.partition_kind, grids, device, tuple(sorted(self.partition_params().items())))

    # ------------------------------------------------------------------ forward
    #: KV-padded layers attend over all k² slots of every window, pad-slot queries included
    #: (their outputs are dropped), while that adds at most this fraction of extra tokens:
    #: one dense attention batch on contiguous qkv then beats gathering keys per window.
    slot_layout_max_overhead = 0.35

    def forward(self, x: Tensor, grids: Optional[Tuple[Grid, ...]] = None,
                rope: Optional[AxialRoPE] = None) -> Tensor:
        """Attention inside the groups of the tokens of ``grids``; groups never mix grids.

        The one entry point of every variant: HRSAM's blocks pass token sequences and their
        grids, SAM's blocks (SAM-Lightening) pass one token map and nothing else.

        Args:
            x (Tensor): (B, L, C) tokens of ``grids`` laid end to end, each in raster
                order; with ``grids`` None, one (B, H, W, C) token map.
            grids (tuple[Grid], optional): the (h, w) grids ``x`` is made of.
            rope (AxialRoPE, optional): rotary embedding applied to q and k.

        Returns:
            Tensor: same shape as ``x``.
        """
        if grids is None:
            if x.dim() != 4:
                raise ValueError(f'{type(self).__name__} without grids expects a (B, H, W, C) map, '
                                 f'got shape {tuple(x.shape)}')
            B, H, W, C = x.shape
            return self._forward_tokens(x.reshape(B, H * W, C), ((H, W), ), rope).view(B, H, W, C)
        if x.dim() != 3:
            raise ValueError(f'{type(self).__name__} expects (B, L, C) tokens with grids, got shape {tuple(x.shape)}')
        return self._forward_tokens(x, tuple(grids), rope)

    def _forward_tokens(self, x: Tensor, grids: Tuple[Grid, ...], rope: Optional[AxialRoPE]) -> Tensor:
        """(B, L, C) tokens of ``grids`` -> (B, L, C): reorder, attend per group, restore, project."""
        B, L, C = x.shape
        if C != self.embed_dim:
            raise ValueError(f'expected {self.embed_dim} channels, got {C}')
        part = self.partition(grids, str(x.device))
        if L != part.num_tokens:
            raise ValueError(f'{L} tokens do not match grids {grids}')
        if part.uses_padding and part.slot_overhead <= self.slot_layout_max_overhead:
            out = self._attend_over_slots(x, part, rope)
        else:
            out = self._attend_over_groups(x, part, rope)
        if self.padding is not None and not part.uses_padding and torch.is_grad_enabled():
            # Grids whose windows need no virtual slot (e.g. non-shift windows at 1024²) leave
            # the pad token out of the graph; a zero-weighted use keeps it in, so distributed
            # data parallel needs no per-step search for unused parameters. Output unchanged.
            out = out + 0.0 * self.padding.sum()
        return self.proj(out.flatten(2))

    def _observe(self, q: Tensor, k: Tensor, part: TokenPartition, bias: Optional[Tensor] = None) -> None:
        """Hand the kernel's inputs to the observer, if any; read-only, numerics unchanged."""
        if self.attention_observer is not None:
            self.attention_observer(AttentionInputs(q, k, part, self.scale, bias))

    def _attend_over_groups(self, x: Tensor, part: TokenPartition, rope: Optional[AxialRoPE]) -> Tensor:
        """Queries of real tokens in group order; returns (B, L, heads, d) in raster order."""
        B = x.shape[0]
        heads, d = self.num_heads, self.head_dim
        x_grouped = x if part.is_identity else gather_rows(x, part.q_index, part.inverse)
        qkv = self.qkv(x_grouped).unflatten(-1, (3, heads, d))  # (B, L, 3, heads, d)
        q, k, v = qkv.unbind(2)
        if not part.kv_follows_q:
            if part.kv_slot_of_q_row is None:  # a token in several (or no) key slots
                kv = qkv[:, part.kv_source_in_q_order, 1:]  # (B, Lkv, 2, heads, d)
            else:
                kv = gather_rows(qkv[:, :, 1:], part.kv_source_in_q_order, part.kv_slot_of_q_row)
            if part.uses_padding:
                pad_kv = self.qkv(self.padding).view(1, 1, 3, heads, d)[:, :, 1:]
                kv[:, part.pad_slots] = pad_kv.to(kv.dtype).expand(B, len(part.pad_slots), 2, heads, d)
            k, v = kv.unbind(2)
        if rope is not None:
            q, k = rope(q, part.q_pos), rope(k, part.kv_pos)
        self._observe(q, k, part)
        out_index = None if part.is_identity else part.q_index
        return block_diagonal_attention(q, k, v, part, self.scale, self.backend, out_index=out_index)

    def _attend_over_slots(self, x: Tensor, part: TokenPartition, rope: Optional[AxialRoPE]) -> Tensor:
        """Every key slot also queries (pad slots hold the pad token), so q, k, v come from one
        contiguous projection and each window is one dense block; returns (B, L, heads, d)."""
        B = x.shape[0]
        heads, d = self.num_heads, self.head_dim
        x_slots = gather_rows(x, part.kv_source, part.slot_of_token)  # (B, Lkv, C); pad slots overwritten next
        x_slots[:, part.pad_slots] = self.padding.to(x_slots.dtype).expand(B, len(part.pad_slots), -1)
        q, k, v = self.qkv(x_slots).unflatten(-1, (3, heads, d)).unbind(2)
        if rope is not None:
            q, k = rope(q, part.kv_pos), rope(k, part.kv_pos)
        self._observe(q, k, part.slot_partition)
        out = block_diagonal_attention(q, k, v, part.slot_partition, self.scale, self.backend)
        return gather_rows(out, part.slot_of_token, part.kv_index)  # pad slots (kv_index L) feed no token

    def extra_repr(self) -> str:
        return f'embed_dim={self.embed_dim}, num_heads={self.num_heads}, backend={self.backend!r}'


@contextlib.contextmanager
def observe_attention(model: nn.Module, observer: AttentionObserver) -> Iterator[List[str]]:
    """Call ``observer(name, inputs)`` from every attention layer of ``model`` while inside.

    Every :class:`FlexibleLocalAttention` (any variant) calls it once per forward with the
    queries and keys exactly as its kernel receives them (:class:`AttentionInputs`), so an
    analysis sees the model's own numerics (e.g. the attention-score analysis,
    ``tools/analysis/attention_scores.py``). Attention modules of other kinds (SAM's own
    window / global blocks) are not observed.

    Args:
        model (nn.Module): a model holding attention layers.
        observer (callable): ``observer(layer_name, inputs)``; layer names are
            ``model.named_modules()``'s.

    Yields:
        list[str]: the names of the observed layers, in module order.

    Raises:
        ValueError: ``model`` has no FlexibleLocalAttention layer.
        RuntimeError: a layer is already being observed.
    """
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, FlexibleLocalAttention)]
    if not layers:
        raise ValueError(f'{type(model).__name__} has no FlexibleLocalAttention layer to observe')
    busy = [name for name, m in layers if m.attention_observer is not None]
    if busy:
        raise RuntimeError(f'attention layers {busy} are already observed')
    try:
        for name, m in layers:
            m.attention_observer = functools.partial(observer, name)
        yield [name for name, _ in layers]
    finally:
        for _, m in layers:
            m.attention_observer = None
