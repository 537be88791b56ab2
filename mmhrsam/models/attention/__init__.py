"""Flexible Local Attention (FLA) token mixers; their index maps and kernels are in :mod:`mmhrsam.ops.attention`."""
from .base import FlexibleLocalAttention
from .dilated import DilatedAttention
from .global_attention import GlobalAttention
from .swin import FlashSwinAttention, KVPadSwinAttention, PlainSwinAttention

__all__ = [
    'FlexibleLocalAttention', 'GlobalAttention', 'FlashSwinAttention', 'KVPadSwinAttention', 'PlainSwinAttention',
    'DilatedAttention'
]
