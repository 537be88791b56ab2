"""Flexible Local Attention (FLA): index maps, kernels and the attention variants."""
from .backends import (BACKENDS, BackendUnavailableError, available_backends, block_diagonal_attention,
                       get_default_backend, set_default_backend)
from .base import FlexibleLocalAttention
from .dilated import DilatedAttention
from .global_attention import GlobalAttention
from .index_maps import (TokenPartition, concat_partitions, dilated_partition, global_partition,
                         multi_scale_partition, window_partition)
from .rope import AxialRoPE
from .swin import (FlashSwinAttention, KVPadSwinAttention, MultiScaleFlashSwinAttention,
                   MultiScaleKVPadSwinAttention, PlainSwinAttention)

__all__ = [
    'BACKENDS', 'BackendUnavailableError', 'available_backends', 'block_diagonal_attention',
    'get_default_backend', 'set_default_backend', 'FlexibleLocalAttention', 'GlobalAttention',
    'FlashSwinAttention', 'KVPadSwinAttention', 'PlainSwinAttention', 'DilatedAttention',
    'MultiScaleFlashSwinAttention', 'MultiScaleKVPadSwinAttention', 'AxialRoPE', 'TokenPartition',
    'window_partition', 'dilated_partition', 'global_partition', 'concat_partitions', 'multi_scale_partition'
]
