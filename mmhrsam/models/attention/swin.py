"""Swin-style window attention: Flash Swin, KV-only padding, and the traditional Plain Swin
(cyclic roll + additive mask) they are checked against."""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmhrsam.registry import MODELS

from mmhrsam.ops.attention import ATTENTION_BACKENDS, Grid, TokenPartition

from ..layers.rope import AxialRoPE
from .base import FlexibleLocalAttention


class _WindowAttention(FlexibleLocalAttention):
    """k x k windows offset by ``shift_size`` on each token map (see :mod:`.index_maps`
    for grids that are not a multiple of the window)."""

    kv_padding = False

    def __init__(self, embed_dim: int, num_heads: int, window_size: int = 16, shift_size: int = 0,
                 qkv_bias: bool = True, backend: str = 'auto', init_cfg: Optional[dict] = None):
        super().__init__(embed_dim, num_heads, qkv_bias=qkv_bias, kv_padding=self.kv_padding,
                         backend=backend, init_cfg=init_cfg)
        if window_size < 1 or not 0 <= shift_size < window_size:
            raise ValueError(f'need window_size >= 1 and 0 <= shift_size < window_size, '
                             f'got {window_size} and {shift_size}')
        self.window_size = window_size
        self.shift_size = shift_size

    partition_kind = 'window'

    def partition_params(self) -> dict:
        return dict(window_size=self.window_size, shift_size=self.shift_size, kv_padding=self.kv_padding)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, window_size={self.window_size}, shift_size={self.shift_size}'


@MODELS.register_module()
class FlashSwinAttention(_WindowAttention):
    """Flash Swin (paper Sec. 3.3): shifted windows as unequal groups, no roll, no mask.

    Windows tile the grid from row and column ``-shift_size``. With ``shift_size = k/2``
    the border windows are s x s corners and s x k / k x s edges; interior ones k x k.
    Equal to :class:`PlainSwinAttention` with the same arguments exactly when k divides
    2 * shift_size (shift 0 or k/2, on any grid); for other shifts the windows are Plain
    Swin's for shift ``k - shift_size`` (docs/architecture.md, "Flash Swin and Plain Swin").

    Args:
        embed_dim (int): channels C.
        num_heads (int): heads.
        window_size (int): k.
        shift_size (int): window offset, 0 for non-shift windows, k/2 for Swin's shift
            (other values: see above).
        qkv_bias (bool): bias in ``qkv``.
        backend (str): attention kernel (see :mod:`.backends`).
        init_cfg (dict, optional): MMEngine initialization config.
    """


@MODELS.register_module()
class KVPadSwinAttention(_WindowAttention):
    """Flash Swin with KV-only padding (paper Sec. 3.4): every window attends to exactly
    k² keys, virtual slots filled by one learnable pad token (``padding``, (1, C), passed
    through ``qkv``). Queries are the real tokens only, so the pad token is learned
    through keys and values alone; it is never masked. All groups being equal, one dense
    attention batch of shape (B * windows, heads, k², d) computes the layer.

    Args: as :class:`FlashSwinAttention`.
    """

    kv_padding = True


# HRSAM++'s multi-map forms (paper App. C) are the same layers: every variant takes several
# grids (``forward(x, grids)``) and never mixes them. The old names stay for configs.
MODELS.register_module(name='MultiScaleFlashSwinAttention', module=FlashSwinAttention)
MODELS.register_module(name='MultiScaleKVPadSwinAttention', module=KVPadSwinAttention)


#: Most Plain Swin layouts kept; the oldest is dropped beyond it.
LAYOUT_CACHE_SIZE = 64
_LAYOUTS: Dict[tuple, Tuple[Tensor, Tensor, Tensor]] = {}  # a dict, not lru_cache: see index_maps.cached_partition


def _plain_swin_layout(h: int, w: int, k: int, s: int, device: str) -> Tuple[Tensor, Tensor, Tensor]:
    key = (h, w, k, s, device)
    if key not in _LAYOUTS:
        if len(_LAYOUTS) >= LAYOUT_CACHE_SIZE:
            del _LAYOUTS[next(iter(_LAYOUTS))]
        _LAYOUTS[key] = _build_plain_swin_layout(h, w, k, s, device)
    return _LAYOUTS[key]


def _build_plain_swin_layout(h: int, w: int, k: int, s: int, device: str) -> Tuple[Tensor, Tensor, Tensor]:
    """Additive mask (nW, k², k²), RoPE positions (nW*k², 2) and the token of every slot
    (nW*k²,) (``h*w`` for zero padding) of the rolled, padded grid.

    Tokens carry a region label: in the rolled frame, Swin's three row and column slices
    (``[0, Hp-k)``, ``[Hp-k, Hp-s)``, ``[Hp-s, Hp)``) give 9 regions of tokens that were
    neighbours before the roll. Zero-padding tokens get a label of their own each, so
    real tokens never see them (and they see only themselves, avoiding empty rows).
    """
    hp, wp = math.ceil(h / k) * k, math.ceil(w / k) * k
    r, c = torch.arange(hp), torch.arange(wp)
    y, x = (r + s) % hp, (c + s) % wp  # coordinates before the roll

    def region(i, n):
        return (i >= n - k).long() + (i >= n - s).long() if s else torch.zeros_like(i)

    label = region(r, hp)[:, None] * 3 + region(c, wp)[None, :]
    valid = (y < h)[:, None] & (x < w)[None, :]
    label = torch.where(valid, label, 9 + torch.arange(hp * wp).view(hp, wp))
    pos = torch.stack(torch.meshgrid(y + s, x + s, indexing='ij'), -1).float()

    def windows(t):  # (hp, wp, ...) -> (nW, k*k, ...)
        t = t.reshape(hp // k, k, wp // k, k, *t.shape[2:]).transpose(1, 2)
        return t.reshape((hp // k) * (wp // k), k * k, *t.shape[4:])

    lab = windows(label)
    mask = torch.zeros(lab.shape[0], k * k, k * k).masked_fill(lab[:, :, None] != lab[:, None, :], float('-inf'))
    tokens = torch.where(valid, y[:, None] * w + x[None, :], h * w)
    return mask.to(device), windows(pos).reshape(-1, 2).to(device), windows(tokens).reshape(-1).to(device)


@MODELS.register_module()
class PlainSwinAttention(_WindowAttention):
    """The traditional Swin implementation: zero-pad to a multiple of k, cyclic roll by
    -s, k x k windows, an additive -inf mask between regions that the roll brought
    together (and against padding), roll back, crop. O(k⁴) mask per window; kept as the
    baseline Flash Swin is measured and tested against. The roll cuts windows at rows and
    columns s, s + k, ..., Flash Swin at k - s, 2k - s, ...: the two agree only when k
    divides 2s (see :class:`FlashSwinAttention`).

    Backends: ``sdpa`` (masked dense SDPA) and ``reference``; ``auto`` uses ``sdpa`` even
    when the global default is ``flex`` or ``xformers``, which have no masked dense form.
    Args: as :class:`FlashSwinAttention`.
    """

    def __init__(self, embed_dim: int, num_heads: int, window_size: int = 16, shift_size: int = 0,
                 qkv_bias: bool = True, backend: str = 'auto', init_cfg: Optional[dict] = None):
        if backend in ('flex', 'xformers'):
            raise ValueError(f"PlainSwinAttention runs on 'sdpa' or 'reference', not {backend!r}")
        super().__init__(embed_dim, num_heads, window_size=window_size, shift_size=shift_size, qkv_bias=qkv_bias,
                         backend=backend, init_cfg=init_cfg)

    def _forward_tokens(self, x: Tensor, grids: Tuple[Grid, ...], rope: Optional[AxialRoPE]) -> Tensor:
        if len(grids) != 1:
            raise ValueError('PlainSwinAttention handles a single token map')
        (h, w), = grids
        B, L, C = x.shape
        k, s, heads, d = self.window_size, self.shift_size, self.num_heads, self.head_dim
        # its own dense masked kernel: 'reference' when that is what the switch says, else SDPA
        backend = 'reference' if ATTENTION_BACKENDS.resolve(self.backend, x) == 'reference' else 'sdpa'
        hp, wp = math.ceil(h / k) * k, math.ceil(w / k) * k
        nw = (hp // k) * (wp // k)

        xs = F.pad(x.view(B, h, w, C), (0, 0, 0, wp - w, 0, hp - h))
        if s:
            xs = torch.roll(xs, (-s, -s), dims=(1, 2))
        xs = xs.view(B, hp // k, k, wp // k, k, C).transpose(2, 3).reshape(B, nw * k * k, C)
        q, kk, v = self.qkv(xs).unflatten(-1, (3, heads, d)).unbind(2)  # (B, nW*k², heads, d)
        mask, pos, tokens = _plain_swin_layout(h, w, k, s, str(x.device))
        if rope is not None:
            q, kk = rope(q, pos), rope(kk, pos)
        if self.attention_observer is not None:  # windows as equal groups, the roll mask as bias
            lengths = (k * k, ) * nw
            self._observe(q, kk, TokenPartition(tokens, lengths, tokens, lengths, pos, pos, h * w), bias=mask)

        def to_windows(t):  # (B, nW*k², heads, d) -> (B*nW, heads, k², d)
            return t.reshape(B * nw, k * k, heads, d).transpose(1, 2)

        q, kk, v = to_windows(q), to_windows(kk), to_windows(v)
        bias = mask.to(q.dtype)[None].expand(B, -1, -1, -1).reshape(B * nw, 1, k * k, k * k)
        if backend == 'sdpa':
            out = F.scaled_dot_product_attention(q, kk, v, attn_mask=bias, scale=self.scale)
        else:
            attn = (q.float() @ kk.float().transpose(-2, -1)) * self.scale + bias.float()
            out = (attn.softmax(-1) @ v.float()).to(q.dtype)
        out = self.proj(out.transpose(1, 2).reshape(B, hp // k, wp // k, k, k, C))
        out = out.transpose(2, 3).reshape(B, hp, wp, C)
        if s:
            out = torch.roll(out, (s, s), dims=(1, 2))
        return out[:, :h, :w].reshape(B, L, C)
