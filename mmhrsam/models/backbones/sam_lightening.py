"""SAM-Lightening: SAM's ViT image encoder with Dilated Flash Attention blocks.

The encoder *is* :class:`~.sam_vit.SAMViT` (patch embedding, absolute position embedding,
segment_anything's transformer blocks and SAM's 256-channel neck, unchanged), with the
attention of chosen blocks replaced by :class:`~mmhrsam.models.attention.DilatedAttention`:
every token attends to the tokens whose row and column agree with its own modulo the
block's dilation rate, so each of the ``rate**2`` groups is a dense sub-grid that any
flash-attention kernel runs at full speed. The other blocks keep SAM's own windowed or
global attention (with decomposed relative positions). ``DilatedAttention`` shares SAM's
parameter names (``qkv``, ``proj``), so SAM ViT weights load into every block except the
relative-position tables of the replaced ones.

The output is SAM's: a (B, 256, H/16, W/16) embedding (64 x 64 at 1024²) that SAM's prompt
encoder and mask decoder (:class:`~mmhrsam.models.heads.SAMHead`) take unchanged.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

from mmhrsam.registry import MODELS

from ..attention import DilatedAttention
from .sam_vit import SAMViT, resolve_arch

#: Block kinds besides an int dilation rate: SAM's own attention.
SAM_BLOCK_KINDS = ('window', 'global')

#: Presets. The paper's abstract gives no widths or rates; these are this project's choice:
#: a ViT-S / ViT-B body whose blocks alternate SAM's 14 x 14 windows (local mixing across
#: dilation groups) and rate-2 dilated attention (image-wide context), no dense global block,
#: so the cost stays linear in the number of groups at 2048² and 4096².
SAM_LIGHTENING_ARCHS: Dict[str, dict] = {
    'vit-s': dict(embed_dim=384, depth=12, num_heads=6, attn_pattern=('window', 2) * 6),
    'vit-b': dict(embed_dim=768, depth=12, num_heads=12, attn_pattern=('window', 2) * 6),
}


def check_pattern(pattern: Sequence[Union[int, str]], depth: int) -> Tuple[Union[int, str], ...]:
    """``pattern`` as a tuple after checking it has one valid entry per block.

    Raises:
        ValueError: wrong length, or an entry that is neither an int >= 1 nor
            ``'window'`` / ``'global'``.
    """
    pattern = tuple(pattern)
    if len(pattern) != depth:
        raise ValueError(f'attn_pattern has {len(pattern)} entries for {depth} blocks')
    for i, kind in enumerate(pattern):
        is_rate = isinstance(kind, int) and not isinstance(kind, bool)
        if not ((is_rate and kind >= 1) or kind in SAM_BLOCK_KINDS):
            raise ValueError(f'attn_pattern[{i}] = {kind!r}: expected a dilation rate >= 1 or one of '
                             f'{SAM_BLOCK_KINDS}')
    return pattern


@MODELS.register_module()
class SAMLightening(SAMViT):
    """SAM-Lightening image encoder: ``MODELS.build(dict(type='SAMLightening'))``.

    Args:
        arch (str | dict): a key of :data:`SAM_LIGHTENING_ARCHS` or a dict with
            ``embed_dim``, ``depth``, ``num_heads`` and ``attn_pattern``: one entry per block,
            an int dilation rate (Dilated Flash Attention; 1 is dense global attention through
            the same kernels), ``'window'`` (SAM's 14 x 14 windowed attention) or ``'global'``
            (SAM's global attention; it materializes the N x N scores).
        img_size (int): input size the absolute position embedding is learnt for.
        out_indices (Sequence[int]): blocks whose outputs (B, embed_dim, H/16, W/16) are
            returned before the embedding.
        interpolate_pos_embed (bool): accept other input sizes by resizing the position
            embedding (see :class:`SAMViT`); on by default since dilated blocks work at any
            grid.
        attn_backend (str): kernel of the dilated blocks (see ``mmhrsam.models.attention``).
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'vit-s',
                 img_size: int = 1024,
                 out_indices: Sequence[int] = (),
                 interpolate_pos_embed: bool = True,
                 attn_backend: str = 'auto',
                 init_cfg: Optional[dict] = None):
        spec = resolve_arch(arch, SAM_LIGHTENING_ARCHS, 'SAM-Lightening')
        pattern = check_pattern(spec['attn_pattern'], spec['depth'])
        # Dilated blocks are built as SAM global blocks (no window partition around the
        # attention), then their attention module is swapped.
        sam_spec = dict(embed_dim=spec['embed_dim'], depth=spec['depth'], num_heads=spec['num_heads'],
                        global_attn_indexes=tuple(i for i, kind in enumerate(pattern) if kind != 'window'))
        super().__init__(arch=sam_spec, img_size=img_size, out_indices=out_indices,
                         interpolate_pos_embed=interpolate_pos_embed, init_cfg=init_cfg)
        self.attn_pattern = pattern
        for block, kind in zip(self.blocks, pattern):
            if kind not in SAM_BLOCK_KINDS:
                block.attn = DilatedAttention(spec['embed_dim'], spec['num_heads'], dilation=kind, qkv_bias=True,
                                              backend=attn_backend)

    @property
    def embed_dim(self) -> int:
        """Token channels of the transformer blocks."""
        return self.patch_embed.proj.out_channels
