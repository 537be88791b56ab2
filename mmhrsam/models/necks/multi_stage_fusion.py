"""Multi-stage fusion neck of HRSAM / HRSAM++ (the paper's Fig. 2, right): every stage's
feature map projected to SAM's embedding width, summed, then refined by a depthwise conv.

HRSAM and HRSAM++ compose it after their stages (``docs/architecture.md``, "The paper's
boxes"). Its parameter names (``lateral_convs.{k}.{0,1}``, ``out_conv.{0,2}``) are those
of the released checkpoints' fusion under ``backbone.``: the encoders register its two
parts on themselves under those names ("Checkpoint names").
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmhrsam.registry import MODELS

from ..layers import Permute


@MODELS.register_module()
class MultiStageFusionNeck(BaseModule):
    """Per-stage Linear + LayerNorm projections, summed, then a depthwise 3x3 conv + LayerNorm.

    With HRSAM's ViT-B (4 stages of C = 768 channels; HRSAM++: 2C = 1536, main and anchor
    features concatenated) it turns the stage maps into SAM's (B, 256, h, w) image embedding.

    Args:
        in_channels (int): channels of every stage's map.
        out_channels (int): channels of the fused embedding (SAM's decoder: 256).
        num_stages (int): number of stage maps the forward takes.
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self, in_channels: int, out_channels: int = 256, num_stages: int = 4,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels, self.out_channels, self.num_stages = in_channels, out_channels, num_stages
        # Linear + LN on channels-last maps: (B, h, w, in) -> (B, h, w, out), no bias (the LN has one).
        self.lateral_convs = nn.ModuleList(
            nn.Sequential(nn.Linear(in_channels, out_channels, bias=False), nn.LayerNorm(out_channels))
            for _ in range(num_stages))
        # (B, out, h, w) -> (B, out, h, w): depthwise 3x3 conv, LN over channels (indices 0 and 2
        # are the checkpoints' out_conv.0 / out_conv.2).
        self.out_conv = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False),
            Permute(0, 2, 3, 1), nn.LayerNorm(out_channels), Permute(0, 3, 1, 2))

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor]:
        """Args:
            feats (Sequence[Tensor]): ``num_stages`` maps, each (B, in_channels, h, w) (the
                encoders' ``out_indices`` outputs; channels-last views of them are used).

        Returns:
            tuple[Tensor]: ``(embedding,)``, embedding (B, out_channels, h, w).
        """
        if len(feats) != self.num_stages:
            raise ValueError(f'{type(self).__name__} takes {self.num_stages} stage maps, got {len(feats)}')
        # (B, h, w, out): the stages' projections on channels-last views, summed
        fused = sum(lateral(f.permute(0, 2, 3, 1)) for lateral, f in zip(self.lateral_convs, feats))
        return (self.out_conv(fused.permute(0, 3, 1, 2)), )
