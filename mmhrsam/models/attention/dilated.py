"""Dilated attention (SAM-Lightening's Dilated Flash Attention) as one more FLA index map."""
from __future__ import annotations

from typing import Optional

from mmhrsam.registry import MODELS

from .base import FlexibleLocalAttention


@MODELS.register_module()
class DilatedAttention(FlexibleLocalAttention):
    """Attention inside each of the ``dilation**2`` interleaved sub-grids of stride ``dilation``.

    Args:
        embed_dim (int): channels C.
        num_heads (int): heads.
        dilation (int): stride of the sub-grids; 1 is global attention.
        qkv_bias (bool): bias in ``qkv``.
        backend (str): attention kernel (see :mod:`.backends`).
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self, embed_dim: int, num_heads: int, dilation: int = 2, qkv_bias: bool = True,
                 backend: str = 'auto', init_cfg: Optional[dict] = None):
        super().__init__(embed_dim, num_heads, qkv_bias=qkv_bias, backend=backend, init_cfg=init_cfg)
        if dilation < 1:
            raise ValueError(f'dilation must be >= 1, got {dilation}')
        self.dilation = dilation

    partition_kind = 'dilated'

    def partition_params(self) -> dict:
        return dict(dilation=self.dilation)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, dilation={self.dilation}'
