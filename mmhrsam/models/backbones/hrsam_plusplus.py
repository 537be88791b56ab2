"""HRSAM++: HRSAM with a 512² anchor map and multi-scale Cycle-scan fusion (paper Sec. 3.6)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmhrsam.registry import MODELS, build_model

from mmhrsam.ops.attention import Grid

from ..layers import PatchEmbed
from .hrsam import HRSAM, split_grids


@MODELS.register_module()
class HRSAMPlusPlus(HRSAM):
    """HRSAM++ image encoder: ``MODELS.build(dict(type='HRSAMPlusPlus'))`` is the paper's
    ViT-B model (106,934,016 parameters).

    The normalized (padded) input is also resized bilinearly to an ``anchor_size`` map.
    Both scales share the patch embedding, position embedding and blocks; their tokens
    run as one sequence [main; anchor] whose attention windows never mix scales (with
    KV-only padding, one pad token serves both: paper App. C). Per stage, the
    single-scale Cycle-scan (``ss_mamba_blocks``) runs before the last block on each
    scale separately, and a multi-scale Cycle-scan (``ms_mamba_blocks``) after it over
    the joint sequence. A stage's output is the main map concatenated with the anchor map
    upsampled to it, both through one shared LayerNorm (``multi_scale_fusion``).

    Args:
        anchor_size (int): side of the anchor image.
        ms_cycle_scan_cfg (dict): the multi-scale Cycle-scan modules.
        Other arguments: as :class:`HRSAM`; with ``out_indices`` the stage features have
        2C channels (main and anchor concatenated).
    """

    scan_attr = 'ss_mamba_blocks'
    stage_scan_names = ('ss_mamba_blocks', 'ms_mamba_blocks')

    def __init__(self,
                 anchor_size: int = 512,
                 ms_cycle_scan_cfg: dict = dict(type='MultiScaleCycleScan', d_state=32),
                 patch_size: int = 16,
                 in_channels: int = 3,
                 embed_dim: int = 768,
                 depth: int = 12,
                 num_heads: int = 12,
                 mlp_ratio: float = 4.0,
                 num_stages: int = 4,
                 window_size: int = 16,
                 attn_cfg: dict = dict(type='KVPadSwinAttention'),
                 cycle_scan_cfg: Optional[dict] = dict(type='CycleScan', d_state=32),
                 pretrain_grid: int = 14,
                 out_channels: int = 256,
                 out_indices: Optional[Sequence[int]] = None,
                 use_rope: bool = True,
                 drop_path_rate: float = 0.0,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(patch_size=patch_size, in_channels=in_channels, embed_dim=embed_dim, depth=depth,
                         num_heads=num_heads, mlp_ratio=mlp_ratio, num_stages=num_stages, window_size=window_size,
                         attn_cfg=attn_cfg, cycle_scan_cfg=cycle_scan_cfg, pretrain_grid=pretrain_grid,
                         out_channels=out_channels, out_indices=out_indices, use_rope=use_rope,
                         drop_path_rate=drop_path_rate, with_cp=with_cp, init_cfg=init_cfg)
        if anchor_size % patch_size:
            raise ValueError(f'anchor_size {anchor_size} must be a multiple of patch_size {patch_size}')
        self.anchor_size = anchor_size
        self.ms_mamba_blocks = nn.ModuleList(
            build_model(dict(ms_cycle_scan_cfg, embed_dim=embed_dim)) for _ in range(num_stages))
        self.multi_scale_fusion = nn.ModuleList(nn.Sequential(nn.LayerNorm(embed_dim)) for _ in range(num_stages))

    @property
    def stage_channels(self) -> int:
        return 2 * self.embed_dim  # main and upsampled anchor features, concatenated

    def embed_inputs(self, img: Tensor) -> Tuple[Tensor, Tuple[Grid, ...]]:
        padded = PatchEmbed.pad(img, self.patch_size)
        anchor = F.interpolate(padded, size=(self.anchor_size, self.anchor_size), mode='bilinear',
                               align_corners=False)
        main, small = self.embed(padded), self.embed(anchor)  # (B, h, w, C), (B, a, a, C)
        grids = (tuple(main.shape[1:3]), tuple(small.shape[1:3]))
        return torch.cat([main.flatten(1, 2), small.flatten(1, 2)], dim=1), grids

    def after_stage(self, stage: int, x: Tensor, grids: Tuple[Grid, ...]) -> Tensor:
        return self._run(self.ms_mamba_blocks[stage].forward_tokens, x)

    def stage_feature(self, stage: int, x: Tensor, grids: Tuple[Grid, ...]) -> Tensor:
        main, small = split_grids(x, grids)  # (B, h, w, C), (B, a, a, C)
        small = F.interpolate(small.permute(0, 3, 1, 2), size=grids[0], mode='bilinear',
                              align_corners=False).permute(0, 2, 3, 1)
        norm = self.multi_scale_fusion[stage]
        return torch.cat([norm(main), norm(small)], dim=-1)  # (B, h, w, 2C)
