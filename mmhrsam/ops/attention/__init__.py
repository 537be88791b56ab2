"""Flexible Local Attention's building blocks: index maps and block-diagonal kernels."""
from .index_maps import (Grid, TokenPartition, cached_partition, concat_partitions, dilated_partition,
                         global_partition, multi_scale_partition, window_partition)
from .kernels import ATTENTION_BACKENDS, available_backends, block_diagonal_attention

__all__ = [
    'Grid', 'TokenPartition', 'cached_partition', 'concat_partitions', 'dilated_partition', 'global_partition',
    'multi_scale_partition', 'window_partition', 'ATTENTION_BACKENDS', 'available_backends',
    'block_diagonal_attention'
]
