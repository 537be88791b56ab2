"""Flexible Local Attention (FLA) token mixers; their index maps and kernels are in :mod:`mmhrsam.ops.attention`."""
from .base import AttentionInputs, AttentionObserver, FlexibleLocalAttention, observe_attention
from .dilated import DilatedAttention
from .global_attention import GlobalAttention
from .swin import FlashSwinAttention, KVPadSwinAttention, PlainSwinAttention

__all__ = [
    'AttentionInputs', 'AttentionObserver', 'observe_attention', 'FlexibleLocalAttention', 'GlobalAttention',
    'FlashSwinAttention', 'KVPadSwinAttention', 'PlainSwinAttention', 'DilatedAttention'
]
