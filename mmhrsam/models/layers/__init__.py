"""Layers shared by the encoders: patch embedding, axial RoPE, MLP, transformer block, Cycle-scan."""
from .cycle_scan import CycleScan, MultiScaleCycleScan
from .mlp import Mlp, Permute
from .patch_embed import PatchEmbed
from .rope import AxialRoPE
from .transformer_block import TransformerBlock

__all__ = ['AxialRoPE', 'CycleScan', 'Mlp', 'MultiScaleCycleScan', 'PatchEmbed', 'Permute', 'TransformerBlock']
