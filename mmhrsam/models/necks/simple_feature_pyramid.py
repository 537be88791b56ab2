"""Simple feature pyramid (ViTDet, Li et al. 2022): a detector's multi-scale input made from
the single stride-16 map of a plain ViT such as HRSAM.

No top-down or lateral fusion across levels: every level is the same map resampled on its
own (deconvolution to go finer, identity, max-pooling to go coarser), then projected to the
detector's width by a 1x1 and a 3x3 convolution, each followed by a channel LayerNorm, as
the paper does for ViT backbones.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch.nn.functional as F
from mmengine.model import BaseModule
from segment_anything.modeling.common import LayerNorm2d
from torch import Tensor, nn

from mmhrsam.registry import MODELS

#: Resampling factors a level can have, relative to the input map (4: stride 16 -> 4).
SCALE_FACTORS = (4.0, 2.0, 1.0, 0.5)


def _deconv(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    """Exact 2x upsampling: 2x2 kernel, stride 2 (every input pixel paints its own 2x2 cell)."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)


def _resampler(scale: float, channels: int) -> Tuple[nn.Module, int]:
    """The resampling of one level and the channels it leaves.

    Going finer halves the channels per 2x step (C -> C/2 -> C/4), which keeps the cost of
    the stride-4 level close to that of the input map.
    """
    if scale == 4.0:
        return nn.Sequential(_deconv(channels, channels // 2), LayerNorm2d(channels // 2), nn.GELU(),
                             _deconv(channels // 2, channels // 4)), channels // 4
    if scale == 2.0:
        return _deconv(channels, channels // 2), channels // 2
    if scale == 1.0:
        return nn.Identity(), channels
    if scale == 0.5:
        return nn.MaxPool2d(kernel_size=2, stride=2), channels
    raise ValueError(f'scale factor {scale} is not one of {SCALE_FACTORS}')


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """ViTDet's simple feature pyramid on one backbone map.

    With the defaults, a (B, C, H/16, W/16) map becomes five (B, out_channels, H/s, W/s)
    maps for strides s = 4, 8, 16, 32, 64: what mmdet's FPN-based detectors (Mask R-CNN's
    RPN anchors at strides 4..64, RoI extractors at 4..32) expect from their neck.

    Args:
        in_channels (int): channels C of the input map (HRSAM: ``embed_dim`` for a stage
            output, ``out_channels`` for the fused embedding; HRSAM++: ``2 * embed_dim``).
            Must be divisible by 4 when a level upsamples by 4.
        out_channels (int): channels of every output level.
        scale_factors (Sequence[float]): one level per entry, resampled relative to the
            input: 4 (two stride-2 deconvolutions with LayerNorm + GELU between), 2 (one
            deconvolution), 1 (identity) or 0.5 (2x2 max-pooling). Strictly decreasing, so
            the levels come out fine to coarse.
        num_outs (int): number of outputs; the levels beyond ``len(scale_factors)`` are each
            the previous level subsampled by 2 (1x1 max-pooling, stride 2), with no weights.
        init_cfg (dict | list[dict], optional): MMEngine initialization config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 scale_factors: Sequence[float] = SCALE_FACTORS,
                 num_outs: int = 5,
                 init_cfg: Optional[Union[dict, List[dict]]] = dict(
                     type='Xavier', layer=['Conv2d', 'ConvTranspose2d'], distribution='uniform')):
        super().__init__(init_cfg=init_cfg)
        scale_factors = tuple(float(s) for s in scale_factors)
        if not scale_factors or any(a <= b for a, b in zip(scale_factors, scale_factors[1:])):
            raise ValueError(f'scale_factors must be non-empty and strictly decreasing, got {scale_factors}')
        if num_outs < len(scale_factors):
            raise ValueError(f'num_outs ({num_outs}) must be at least len(scale_factors) ({len(scale_factors)})')
        if 4.0 in scale_factors and in_channels % 4:
            raise ValueError(f'in_channels ({in_channels}) must be divisible by 4 to upsample by 4')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.scale_factors, self.num_outs = scale_factors, num_outs
        self.levels = nn.ModuleList(self._level(scale) for scale in scale_factors)

    def _level(self, scale: float) -> nn.Sequential:
        resample, channels = _resampler(scale, self.in_channels)
        return nn.Sequential(
            resample,
            nn.Conv2d(channels, self.out_channels, kernel_size=1, bias=False), LayerNorm2d(self.out_channels),
            nn.Conv2d(self.out_channels, self.out_channels, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(self.out_channels))

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Args:
            inputs (Sequence[Tensor]): the backbone's outputs; exactly one (B, C, h, w) map
                (HRSAM with ``out_indices=(3,)``, or its fused embedding).

        Returns:
            tuple[Tensor]: ``num_outs`` maps, fine to coarse; level i is
            (B, out_channels, h * scale_factors[i], w * scale_factors[i]) (max-pooling
            rounds down), the extra ones halve the previous size (rounding up).
        """
        if len(inputs) != 1:
            raise ValueError(f'SimpleFeaturePyramid takes one backbone map, got {len(inputs)}; '
                             'give the backbone a single out_indices entry, e.g. out_indices=(3,)')
        x = inputs[0]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'expected a (B, {self.in_channels}, h, w) map, got {tuple(x.shape)}')
        outs = [level(x) for level in self.levels]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)
