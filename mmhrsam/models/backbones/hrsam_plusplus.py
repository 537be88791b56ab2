"""HRSAM++: HRSAM with a 512² anchor map and multi-scale Cycle-scan fusion (paper Sec. 3.6)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmhrsam.ops.attention import Grid
from mmhrsam.registry import MODELS

from ..layers import PatchEmbed
from .hrsam import HRSAM, split_grids


@MODELS.register_module()
class HRSAMPlusPlus(HRSAM):
    """HRSAM++ image encoder: ``MODELS.build(dict(type='HRSAMPlusPlus'))`` is the paper's
    ViT-B model (106,934,016 parameters).

    HRSAM plus two things, each an explicit override:

    - the input (:meth:`embed_inputs`): the normalized (padded) image is also resized
      bilinearly to an ``anchor_size`` map. Both scales share the patch embedding,
      position embedding and blocks; their tokens run as one sequence [main; anchor]
      whose attention windows never mix grids (with KV-only padding, one pad token serves
      both: paper App. C), and the single-scale Cycle-scans (``ss_mamba_blocks``) scan
      each grid on its own;
    - the stages (:meth:`forward_stages`): after each stage a multi-scale Cycle-scan
      (``ms_mamba_blocks``) scans the joint sequence, and the stage's feature is the main
      map concatenated with the anchor map upsampled to it, both through one shared
      LayerNorm (``multi_scale_fusion``).

    The attribute names are those of the released HRSAM++ checkpoints
    (``docs/architecture.md``, "Checkpoint names").

    Args:
        anchor_size (int): side of the anchor image; a multiple of ``patch_size``.
        ms_cycle_scan_cfg (dict): the multi-scale Cycle-scan modules; must scan the grids
            jointly (``type='MultiScaleCycleScan'``).
        cycle_scan_cfg (dict, optional): the single-scale Cycle-scan modules (as
            :class:`HRSAM`'s).
        **hrsam_args: the other arguments of :class:`HRSAM`; with ``out_indices`` the stage
            features have 2C channels (main and anchor concatenated).
    """

    def __init__(self,
                 anchor_size: int = 512,
                 ms_cycle_scan_cfg: dict = dict(type='MultiScaleCycleScan', d_state=32),
                 cycle_scan_cfg: Optional[dict] = dict(type='CycleScan', d_state=32),
                 **hrsam_args):
        # HRSAM's `mamba_blocks` are called `ss_mamba_blocks` in HRSAM++ releases: built here.
        super().__init__(cycle_scan_cfg=None, **hrsam_args)
        if anchor_size % self.patch_size:
            raise ValueError(f'anchor_size {anchor_size} must be a multiple of patch_size {self.patch_size}')
        self.anchor_size = anchor_size
        self.ss_mamba_blocks = self.build_stage_scans(cycle_scan_cfg)
        self.ms_mamba_blocks = self.build_stage_scans(ms_cycle_scan_cfg)
        if not getattr(self.ms_mamba_blocks[0], 'joint_grids', False):
            raise ValueError(f'ms_cycle_scan_cfg must scan the grids jointly (type=\'MultiScaleCycleScan\'), '
                             f'got type={ms_cycle_scan_cfg["type"]!r}')
        self.multi_scale_fusion = nn.ModuleList(nn.Sequential(nn.LayerNorm(self.embed_dim))
                                                for _ in range(self.num_stages))

    @property
    def stage_channels(self) -> int:
        return 2 * self.embed_dim  # main and upsampled anchor features, concatenated

    def embed_inputs(self, img: Tensor) -> Tuple[Tensor, Tuple[Grid, ...]]:
        """[main; anchor] tokens (B, h*w + a*a, C) and their grids ((h, w), (a, a))."""
        padded = PatchEmbed.pad(img, self.patch_size)
        anchor = F.interpolate(padded, size=(self.anchor_size, self.anchor_size), mode='bilinear',
                               align_corners=False)
        main, small = self.embed(padded), self.embed(anchor)  # (B, h, w, C), (B, a, a, C)
        grids = (tuple(main.shape[1:3]), tuple(small.shape[1:3]))
        return torch.cat([main.flatten(1, 2), small.flatten(1, 2)], dim=1), grids

    def forward_stages(self, img: Tensor) -> List[Tensor]:
        """The ``num_stages`` stage features, each (B, h, w, 2C)."""
        x, grids = self.embed_inputs(img)
        feats = []
        for stage in range(self.num_stages):
            x = self.run_stage(stage, x, grids, self.ss_mamba_blocks)
            x = self._run(self.ms_mamba_blocks[stage], x, grids)
            feats.append(self.fuse_scales(stage, x, grids))
        return feats

    def fuse_scales(self, stage: int, x: Tensor, grids: Tuple[Grid, ...]) -> Tensor:
        """(B, h, w, 2C): LN(main) and LN(anchor upsampled to the main grid), concatenated."""
        main, small = split_grids(x, grids)  # (B, h, w, C), (B, a, a, C)
        small = F.interpolate(small.permute(0, 3, 1, 2), size=grids[0], mode='bilinear',
                              align_corners=False).permute(0, 2, 3, 1)
        norm = self.multi_scale_fusion[stage]
        return torch.cat([norm(main), norm(small)], dim=-1)  # (B, h, w, 2C)
