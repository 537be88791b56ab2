"""Index mappings of Flexible Local Attention (FLA, paper Sec. 3.2-3.4, App. A-C).

FLA reorders a token sequence with an index mapping so that every attention group is a
contiguous run, runs block-diagonal attention over groups of possibly unequal length,
and restores the original order with the inverse mapping. A :class:`TokenPartition`
holds one such mapping for queries and one for keys/values (they differ only under
KV-only padding, where virtual key slots point at a learnable pad token).

Grids that are not a multiple of the window
-------------------------------------------
When ``h`` or ``w`` is not a multiple of the window size ``k``, the grid is treated as
padded at the bottom and right to the next multiple of ``k`` with *virtual* tokens, and
windows tile that padded grid starting at row/column ``-shift``. Virtual tokens take no
part in attention: windows at the border simply hold fewer real tokens (plain and
Flash Swin), or have their empty key slots filled with the pad token (KV-only padding).
So the output never depends on padding values.

These windows are cut at rows/columns k - shift, 2k - shift, ...; Swin's roll-and-mask
formulation (``PlainSwinAttention``) cuts at shift, shift + k, ... The two agree exactly
when k divides 2 * shift (shift 0 or k/2, on any grid); otherwise these windows are
Swin's for shift k - shift (docs/architecture.md, "Flash Swin and Plain Swin").

All builders are pure, vectorized and cached (keyed by grid, window, shift, scales and
device); they return index tensors on the requested device.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

Grid = Tuple[int, int]


@dataclass(frozen=True, eq=False)
class TokenPartition:
    """Groups of a token sequence for block-diagonal attention (paper Eq. 4).

    Tokens are numbered ``0..num_tokens-1``; index ``num_tokens`` names the learnable
    pad token appended after them (KV-only padding, paper Eq. 16-17).

    Args:
        q_index (Tensor): (Lq,) long. ``x[q_index]`` puts the queries in group order;
            it is a permutation of ``0..num_tokens-1``.
        q_lengths (tuple[int]): length of every query group, in order.
        kv_index (Tensor): (Lkv,) long. ``cat([x, pad])[kv_index]`` puts keys/values in
            group order.
        kv_lengths (tuple[int]): length of every key/value group.
        q_pos (Tensor): (Lq, 2) float (row, col) of each query on the padded grid,
            for rotary embeddings applied in group order.
        kv_pos (Tensor): (Lkv, 2) float (row, col) of each key slot, virtual slots
            included.
        num_tokens (int): number of real tokens.
    """
    q_index: Tensor
    q_lengths: Tuple[int, ...]
    kv_index: Tensor
    kv_lengths: Tuple[int, ...]
    q_pos: Tensor
    kv_pos: Tensor
    num_tokens: int

    def __post_init__(self):
        if len(self.q_lengths) != len(self.kv_lengths):
            raise ValueError('query and key/value partitions need the same number of groups')
        if sum(self.q_lengths) != self.q_index.numel() or sum(self.kv_lengths) != self.kv_index.numel():
            raise ValueError('group lengths do not add up to the index length')

    @property
    def num_groups(self) -> int:
        return len(self.q_lengths)

    @functools.cached_property
    def inverse(self) -> Tensor:
        """(num_tokens,) long: ``x[q_index][inverse] == x``."""
        return torch.argsort(self.q_index)

    @functools.cached_property
    def kv_source(self) -> Tensor:
        """(Lkv,) long: ``kv_index`` with pad slots pointing at token 0 (then overwritten)."""
        return torch.where(self.kv_index == self.num_tokens, 0, self.kv_index)

    @functools.cached_property
    def kv_source_in_q_order(self) -> Tensor:
        """(Lkv,) long: :attr:`kv_source` on the query-ordered sequence."""
        return self.inverse[self.kv_source]

    @functools.cached_property
    def pad_slots(self) -> Tensor:
        """(P,) long: key/value positions that hold the pad token."""
        return torch.nonzero(self.kv_index == self.num_tokens).flatten()

    @functools.cached_property
    def slot_overhead(self) -> float:
        """Extra fraction of work when every key slot also acts as a query."""
        return self.kv_index.numel() / self.num_tokens - 1

    @functools.cached_property
    def slot_of_token(self) -> Tensor:
        """(num_tokens,) long: the key slot holding each token (each appears once)."""
        real = torch.nonzero(self.kv_index != self.num_tokens).flatten()
        if real.numel() != self.num_tokens:
            raise ValueError('every token must fill exactly one key slot')
        slot = torch.empty_like(real)
        slot[self.kv_index[real]] = real
        return slot

    @functools.cached_property
    def kv_slot_of_q_row(self) -> Optional[Tensor]:
        """(Lq,) long: the key slot holding the token of each query row (query order), or
        None unless every token fills exactly one key slot (the gradient of the key gather is
        then a gather, :func:`.gather.gather_rows`)."""
        tokens = torch.arange(self.num_tokens, device=self.kv_index.device)
        real = self.kv_index[self.kv_index != self.num_tokens]
        if not (torch.equal(torch.sort(real).values, tokens) and torch.equal(torch.sort(self.q_index).values, tokens)):
            return None  # (a slot partition's queries include pad slots)
        return self.slot_of_token[self.q_index]

    @functools.cached_property
    def slot_partition(self) -> 'TokenPartition':
        """The key/value groups used as query groups too (pad slots query as well)."""
        return TokenPartition(self.kv_index, self.kv_lengths, self.kv_index, self.kv_lengths,
                              self.kv_pos, self.kv_pos, self.num_tokens)

    @functools.cached_property
    def kv_follows_q(self) -> bool:
        """True when keys/values are the queries' tokens in the queries' groups."""
        return self.q_lengths == self.kv_lengths and torch.equal(self.q_index, self.kv_index)

    @functools.cached_property
    def uses_padding(self) -> bool:
        return bool((self.kv_index == self.num_tokens).any())

    @functools.cached_property
    def is_identity(self) -> bool:
        """True for a single group holding every token in its original order."""
        n = self.num_tokens
        return (self.num_groups == 1 and self.q_index.numel() == n
                and self.kv_index.numel() == n
                and bool((self.q_index == torch.arange(n, device=self.q_index.device)).all())
                and bool((self.kv_index == self.q_index).all()))

    @functools.cached_property
    def buckets(self) -> Tuple[Tuple[int, int, int], ...]:
        """Runs of consecutive groups of equal size: ``(num_groups, q_len, kv_len)``.

        Each run is one dense attention batch of shape (B * num_groups, heads, len, d).
        """
        runs = []
        for lq, lk in zip(self.q_lengths, self.kv_lengths):
            if runs and runs[-1][1] == lq and runs[-1][2] == lk:
                runs[-1][0] += 1
            else:
                runs.append([1, lq, lk])
        return tuple(tuple(r) for r in runs)

    def precompute(self, with_slots: bool = True) -> 'TokenPartition':
        """Compute every derived index (each ``cached_property``) now and return ``self``.

        A partition built outside ``torch.compile`` then holds only constants, so compiled
        layers read them instead of tracing their construction (a graph break each).
        """
        for name, attr in vars(TokenPartition).items():
            if isinstance(attr, functools.cached_property):
                getattr(self, name)
        if with_slots and self.uses_padding:
            self.slot_partition.precompute(with_slots=False)
        return self

    def bucketed(self) -> 'TokenPartition':
        """The same groups reordered (stably) so that groups of equal size are adjacent.

        FLA does not depend on group order, so this only reduces the number of dense
        attention calls to the number of distinct group sizes.
        """
        lq = torch.tensor(self.q_lengths)
        lk = torch.tensor(self.kv_lengths)
        key = lq * (int(lk.max()) + 1) + lk
        order = torch.argsort(-key, stable=True)  # largest groups first
        return TokenPartition(
            q_index=_reorder_groups(self.q_index, lq, order),
            q_lengths=tuple(lq[order].tolist()),
            kv_index=_reorder_groups(self.kv_index, lk, order),
            kv_lengths=tuple(lk[order].tolist()),
            q_pos=_reorder_groups(self.q_pos, lq, order),
            kv_pos=_reorder_groups(self.kv_pos, lk, order),
            num_tokens=self.num_tokens)


def _reorder_groups(values: Tensor, lengths: Tensor, order: Tensor) -> Tensor:
    """Concatenate the groups of ``values`` (split by ``lengths``) in ``order``."""
    group_of = torch.repeat_interleave(torch.arange(len(lengths)), lengths).to(values.device)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    return values[torch.argsort(rank.to(values.device)[group_of], stable=True)]


def _check_grid(h: int, w: int) -> None:
    if h < 1 or w < 1:
        raise ValueError(f'token grid must be at least 1x1, got {h}x{w}')


def _window_slots(h: int, w: int, k: int, shift: int) -> Tuple[Tensor, Tensor]:
    """Slots of the k x k windows tiling an h x w grid whose first window starts at -shift.

    Returns:
        slots (Tensor): (num_windows, k*k) long, the token index held by each slot in
            row-major order inside the window, -1 for a virtual slot.
        pos (Tensor): (num_windows, k*k, 2) float, each slot's (row, col) on the padded
            grid, i.e. grid coordinate + shift.
    """
    _check_grid(h, w)
    if not 0 <= shift < k:
        raise ValueError(f'shift_size must be in [0, window_size), got {shift} for window {k}')
    n_wy = math.ceil((h + shift) / k)
    n_wx = math.ceil((w + shift) / k)
    rows = torch.arange(n_wy * k) - shift
    cols = torch.arange(n_wx * k) - shift
    valid = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    index = torch.where(valid, rows[:, None] * w + cols[None, :], -1)
    pos = torch.stack(torch.meshgrid(rows + shift, cols + shift, indexing='ij'), -1).float()

    def windows(t: Tensor) -> Tensor:  # (n_wy*k, n_wx*k, ...) -> (n_wy*n_wx, k*k, ...)
        t = t.reshape(n_wy, k, n_wx, k, *t.shape[2:]).transpose(1, 2)
        return t.reshape(n_wy * n_wx, k * k, *t.shape[4:])

    return windows(index), windows(pos)


def _to(part: TokenPartition, device) -> TokenPartition:
    return TokenPartition(
        q_index=part.q_index.to(device), q_lengths=part.q_lengths,
        kv_index=part.kv_index.to(device), kv_lengths=part.kv_lengths,
        q_pos=part.q_pos.to(device), kv_pos=part.kv_pos.to(device), num_tokens=part.num_tokens)


def _window_partition_cpu(h: int, w: int, window_size: int, shift_size: int,
                          kv_padding: bool) -> TokenPartition:
    slots, pos = _window_slots(h, w, window_size, shift_size)
    real = slots >= 0
    q_lengths = tuple(real.sum(1).tolist())
    q_index, q_pos = slots[real], pos[real]
    if kv_padding:
        kv_index = torch.where(real, slots, h * w).reshape(-1)
        kv_lengths = (window_size ** 2, ) * len(q_lengths)
        kv_pos = pos.reshape(-1, 2)
    else:
        kv_index, kv_lengths, kv_pos = q_index, q_lengths, q_pos
    return TokenPartition(q_index, q_lengths, kv_index, kv_lengths, q_pos, kv_pos, h * w)


@functools.lru_cache(maxsize=128)
def window_partition(h: int, w: int, window_size: int, shift_size: int = 0,
                     kv_padding: bool = False, device: str = 'cpu') -> TokenPartition:
    """Windows on an h x w token grid, in the paper's order (windows row-major).

    ``shift_size=0`` gives non-shift windows (paper Eq. 5-6). ``shift_size=k/2`` (even k)
    gives Swin's shifted windows: corner groups of s x s tokens, edge groups of s x k or k x s,
    interior groups of k x k (paper Listing 1, App. A). With ``kv_padding`` every window
    gets exactly ``window_size**2`` key slots, the virtual ones pointing at the pad token
    ``h*w`` (paper Listing 2, App. B); queries stay the real tokens only. Any other shift
    starts the window grid at row/column ``-shift_size``, which is Swin's shifted window
    for shift ``k - shift_size``, not ``shift_size`` (see the module docstring).

    Args:
        h (int): token rows (image height / 16).
        w (int): token columns.
        window_size (int): k.
        shift_size (int): the window grid starts at row/column ``-shift_size``,
            ``0 <= shift_size < k``.
        kv_padding (bool): fill virtual key/value slots with the pad token.
        device (str): device of the returned index tensors.
    """
    return _to(_window_partition_cpu(h, w, window_size, shift_size, kv_padding), device)


@functools.lru_cache(maxsize=128)
def dilated_partition(h: int, w: int, dilation: int, device: str = 'cpu') -> TokenPartition:
    """SAM-Lightening's dilated groups: tokens whose row and column agree modulo ``dilation``.

    Each of the ``dilation**2`` groups is a sub-grid at stride ``dilation`` covering the
    whole image, so attention stays sparse yet global. On grids that are not a multiple
    of ``dilation`` the groups differ in size by up to one row/column.
    """
    _check_grid(h, w)
    if dilation < 1:
        raise ValueError(f'dilation must be >= 1, got {dilation}')
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    group = ((ys % dilation) * dilation + xs % dilation).reshape(-1)
    q_index = torch.argsort(group, stable=True)
    counts = torch.bincount(group, minlength=dilation ** 2)
    lengths = tuple(c for c in counts.tolist() if c > 0)
    pos = torch.stack([ys, xs], -1).reshape(-1, 2).float()[q_index]
    return _to(TokenPartition(q_index, lengths, q_index, lengths, pos, pos, h * w), device)


@functools.lru_cache(maxsize=128)
def global_partition(h: int, w: int, device: str = 'cpu') -> TokenPartition:
    """One group of all tokens (global attention, Table 3 row 1)."""
    _check_grid(h, w)
    index = torch.arange(h * w)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    pos = torch.stack([ys, xs], -1).reshape(-1, 2).float()
    return _to(TokenPartition(index, (h * w, ), index, (h * w, ), pos, pos, h * w), device)


def concat_partitions(parts: Sequence[TokenPartition]) -> TokenPartition:
    """Partitions of consecutive token segments joined into one (paper App. C, Eq. 19).

    Segment ``i``'s tokens follow those of segments ``< i``; groups never mix segments.
    Every segment's pad slots point at one shared pad token after all tokens
    (paper Listing 4).
    """
    total = sum(p.num_tokens for p in parts)
    q_index, kv_index, offset = [], [], 0
    for p in parts:
        q_index.append(p.q_index + offset)
        kv_index.append(torch.where(p.kv_index == p.num_tokens, total, p.kv_index + offset))
        offset += p.num_tokens
    return TokenPartition(
        q_index=torch.cat(q_index), q_lengths=sum((p.q_lengths for p in parts), ()),
        kv_index=torch.cat(kv_index), kv_lengths=sum((p.kv_lengths for p in parts), ()),
        q_pos=torch.cat([p.q_pos for p in parts]), kv_pos=torch.cat([p.kv_pos for p in parts]),
        num_tokens=total)


@functools.lru_cache(maxsize=128)
def multi_scale_partition(kind: str, grids: Tuple[Grid, ...], device: str = 'cpu', **params) -> TokenPartition:
    """Cached :func:`concat_partitions` of one builder over several grids (any number,
    one included). ``kind='window'`` with two grids is the paper's Listing 3, and with
    ``kv_padding=True`` Listing 4 (one shared pad token).

    Args:
        kind (str): ``'window'``, ``'dilated'`` or ``'global'``.
        grids (tuple): (h, w) of each token map, in sequence order.
        device (str): device of the index tensors.
        **params: the builder's remaining arguments (``window_size``, ``dilation``, ...).
    """
    builder = PARTITION_BUILDERS[kind]
    parts = [builder(h, w, device=device, **params) for h, w in grids]
    return parts[0] if len(parts) == 1 else concat_partitions(parts)


PARTITION_BUILDERS = {'window': window_partition, 'dilated': dilated_partition, 'global': global_partition}


#: Most partitions :func:`cached_partition` keeps; the oldest is dropped beyond it. A model
#: meets a handful (one per grid, window and shift), so this only bounds pathological use.
PARTITION_CACHE_SIZE = 256
# A plain dict rather than functools.lru_cache: torch.compile traces through lru_cache
# wrappers (rebuilding the maps in every graph), while it reads a global dict's entries as
# guarded constants, so a warm cache keeps compiled layers free of graph breaks.
_PARTITIONS: Dict[tuple, TokenPartition] = {}


def cached_partition(kind: str, grids: Tuple[Grid, ...], device: str, params: tuple) -> TokenPartition:
    """``multi_scale_partition(kind, grids, device, **dict(params))``, bucketed, with every
    derived index computed (:meth:`TokenPartition.precompute`), cached per arguments."""
    key = (kind, grids, device, params)
    part = _PARTITIONS.get(key)
    if part is None:
        part = multi_scale_partition(kind, grids, device, **dict(params)).bucketed().precompute()
        if len(_PARTITIONS) >= PARTITION_CACHE_SIZE:
            del _PARTITIONS[next(iter(_PARTITIONS))]
        _PARTITIONS[key] = part
    return part
