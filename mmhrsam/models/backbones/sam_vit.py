"""SAM's ViT image encoders as baseline backbones and distillation teachers.

:class:`SAMViT` *is* segment_anything's :class:`ImageEncoderViT` (a subclass, no copied
layers) built with the hyper-parameters of ``build_sam_vit_{b,l,h}``, so its state-dict
keys equal the official ``image_encoder.*`` keys without the prefix. Official weights load
with ``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='image_encoder.')``, or
from a converted checkpoint (``tools/model_converters/sam_to_mmhrsam.py``) with
``prefix='backbone.'``.
"""
from __future__ import annotations

from functools import partial
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from segment_anything.modeling import ImageEncoderViT
from torch import Tensor, nn

from mmhrsam.registry import MODELS

#: Hyper-parameters of segment_anything's build_sam_vit_{b,l,h}.
SAM_VIT_ARCHS: Dict[str, dict] = {
    'vit-b': dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    'vit-l': dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    'vit-h': dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}


def resolve_arch(arch: Union[str, dict], archs: Dict[str, dict], family: str) -> dict:
    """Hyper-parameters of ``arch``: a name of ``archs``, or a dict with the same keys.

    Args:
        arch (str | dict): preset name or explicit hyper-parameters.
        archs (dict): the family's presets; every preset has the same keys.
        family (str): name used in error messages.
    """
    if isinstance(arch, dict):
        missing = set(next(iter(archs.values()))) - set(arch)
        if missing:
            raise ValueError(f'arch dict lacks {sorted(missing)}')
        return arch
    if arch not in archs:
        raise ValueError(f'unknown {family} arch {arch!r}; choose from {sorted(archs)}')
    return archs[arch]


@MODELS.register_module()
class SAMViT(ImageEncoderViT, BaseModule):
    """segment_anything's ViT image encoder with an MMSeg-style tuple output.

    The absolute position embedding is learnt for a ``img_size // 16`` square grid. An input
    of another size raises a ``ValueError`` unless ``interpolate_pos_embed=True``, in which
    case the embedding is resized bilinearly to the input grid (the global-attention blocks'
    relative position tables are already resized by segment_anything itself). SAM was
    trained at 1024² only, so resized outputs are a baseline, not SAM's own behaviour.

    Args:
        arch (str | dict): ``'vit-b'``, ``'vit-l'``, ``'vit-h'``, or a dict with keys
            ``embed_dim``, ``depth``, ``num_heads``, ``global_attn_indexes``.
        img_size (int): input size the position embedding is learnt for.
        out_indices (Sequence[int]): blocks whose outputs (B, embed_dim, H/16, W/16) are
            returned before the final embedding; empty by default.
        interpolate_pos_embed (bool): accept inputs of other sizes (see above).
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'vit-b',
                 img_size: int = 1024,
                 out_indices: Sequence[int] = (),
                 interpolate_pos_embed: bool = False,
                 init_cfg: Optional[dict] = None):
        spec = resolve_arch(arch, SAM_VIT_ARCHS, 'SAM ViT')
        # ImageEncoderViT.__init__ reaches BaseModule.__init__ through super() (MRO), with
        # init_cfg=None; init_cfg is set right after.
        ImageEncoderViT.__init__(
            self,
            img_size=img_size,
            patch_size=16,
            embed_dim=spec['embed_dim'],
            depth=spec['depth'],
            num_heads=spec['num_heads'],
            mlp_ratio=4,
            out_chans=256,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            global_attn_indexes=tuple(spec['global_attn_indexes']),
            window_size=14)
        self.init_cfg = init_cfg
        self.patch_size = 16
        self.out_indices = tuple(i % spec['depth'] for i in out_indices)
        self.interpolate_pos_embed = interpolate_pos_embed

    def _pos_embed_for(self, grid: Tuple[int, int]) -> Tensor:
        """The absolute position embedding (1, h, w, C) for a token grid (h, w)."""
        pos = self.pos_embed  # (1, g, g, C)
        if tuple(pos.shape[1:3]) == tuple(grid):
            return pos
        if not self.interpolate_pos_embed:
            size = self.img_size
            raise ValueError(f'SAMViT was built for {size}x{size} inputs (a {pos.shape[1]}x'
                             f'{pos.shape[2]} token grid) but got a {grid[0]}x{grid[1]} grid; '
                             'resize the input or set interpolate_pos_embed=True')
        pos = F.interpolate(pos.permute(0, 3, 1, 2), size=grid, mode='bilinear', align_corners=False)
        return pos.permute(0, 2, 3, 1)

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer depth of a parameter for layer-wise lr decay (mmpretrain's ViT convention):
        0 for the patch and position embeddings, ``i + 1`` for block ``i``, ``num_layers - 1``
        for the neck. Returns ``(layer_depth, num_layers)``, ``num_layers = depth + 2``."""
        num_layers = len(self.blocks) + 2
        name = param_name[len(prefix):] if param_name.startswith(prefix) else ''
        head, _, rest = name.partition('.')
        if name == 'pos_embed' or head == 'patch_embed':
            return 0, num_layers
        if head == 'blocks':
            return int(rest.split('.')[0]) + 1, num_layers
        return num_layers - 1, num_layers

    def forward(self, img: Tensor) -> Tuple[Tensor, ...]:
        """Args:
            img (Tensor): (B, 3, H, W) normalized image, H and W multiples of 16.

        Returns:
            tuple[Tensor]: the outputs of ``out_indices`` blocks, (B, embed_dim, H/16, W/16)
            each, then the image embedding (B, 256, H/16, W/16) last.
        """
        if img.shape[-2] % self.patch_size or img.shape[-1] % self.patch_size:
            raise ValueError(f'input size {tuple(img.shape[-2:])} is not a multiple of {self.patch_size}')
        x = self.patch_embed(img)  # (B, h, w, C), channels last as in segment_anything
        x = x + self._pos_embed_for(x.shape[1:3])
        outs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.out_indices:
                outs.append(x.permute(0, 3, 1, 2))
        outs.append(self.neck(x.permute(0, 3, 1, 2)))  # (B, 256, h, w)
        return tuple(outs)
