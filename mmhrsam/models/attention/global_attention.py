"""Global attention: every token attends to every token (paper Table 3, row 1)."""
from __future__ import annotations

from typing import Optional

from mmhrsam.registry import MODELS

from .base import FlexibleLocalAttention


@MODELS.register_module()
class GlobalAttention(FlexibleLocalAttention):
    """Plain multi-head self-attention over the whole token map.

    On the tokens of several grids each grid attends within itself.

    Args:
        embed_dim (int): channels C.
        num_heads (int): heads.
        qkv_bias (bool): bias in ``qkv``.
        backend (str): attention kernel (see :mod:`.backends`).
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self, embed_dim: int, num_heads: int, qkv_bias: bool = True, backend: str = 'auto',
                 init_cfg: Optional[dict] = None):
        super().__init__(embed_dim, num_heads, qkv_bias=qkv_bias, backend=backend, init_cfg=init_cfg)
