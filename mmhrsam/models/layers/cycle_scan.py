"""Cycle-scan (HRSAM Sec. 3.5): global token mixing by one selective scan over a repeated sequence."""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmhrsam.ops.attention import Grid
from mmhrsam.ops.selective_scan import cycle_selective_scan
from mmhrsam.registry import MODELS


@MODELS.register_module()
class CycleScan(BaseModule):
    """Residual selective-SSM block that scans the raster token sequence repeated end to end.

    ``out = x + out_proj(z * out_norm(y))`` where ``(xs, z) = SiLU(in_proj(in_norm(x)))``
    and ``y`` is a forward selective scan (Mamba's S6; no causal conv, inner width = C)
    over ``[xs; xs; xs]`` whose ``num_repeats`` output copies are weighted per channel by
    ``gamma`` and summed.

    Why repeat: a forward scan is causal, so in the first copy token i only sees the tokens
    before it in raster order. Every token of a later copy starts from a state that has
    already read the whole image, so it also sees the tokens after it (through the state
    carried over the copy boundary): the causal scan becomes effectively bidirectional, and
    global. The third copy does so from a state that has been through the image twice; the
    learnable ``gamma`` decides, per channel, how much each copy contributes. One long scan
    keeps the cost linear in the number of tokens, with no 2-D scan orders to maintain.

    Parameter names and shapes are those of the released HRSAM checkpoints
    (``mamba_blocks.{k}.*``), so conversion is a key rename.

    Args:
        embed_dim (int): token channels C (also the SSM's inner width).
        d_state (int): SSM state size N per channel.
        num_repeats (int): copies of the sequence scanned end to end.
        dt_min (float): smallest initial time step (log-uniform init of the delta bias).
        dt_max (float): largest initial time step.
        scan_backend (str): selective-scan backend, see
            :func:`mmhrsam.ops.selective_scan.selective_scan`.
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self,
                 embed_dim: int = 768,
                 d_state: int = 32,
                 num_repeats: int = 3,
                 dt_min: float = 0.001,
                 dt_max: float = 0.1,
                 scan_backend: str = 'auto',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dim, self.d_state, self.num_repeats = embed_dim, d_state, num_repeats
        self.scan_backend = scan_backend
        self.in_norm = nn.LayerNorm(embed_dim)
        self.in_proj = nn.Sequential(nn.Linear(embed_dim, 2 * embed_dim), nn.SiLU())
        self.ssm_proj = nn.Linear(embed_dim, embed_dim + 2 * d_state)  # -> delta, B, C
        self.ssm_proj_bias = nn.Parameter(self._init_delta_bias(embed_dim, dt_min, dt_max))
        self.As_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(embed_dim, 1))
        self.Ds = nn.Parameter(torch.ones(embed_dim))
        self.gamma = nn.Parameter(torch.ones(embed_dim, num_repeats, 1))
        self.out_norm = nn.LayerNorm(embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        for p in (self.ssm_proj_bias, self.As_log, self.Ds, self.gamma):
            p._no_weight_decay = True  # mamba-ssm's convention (docs/architecture.md, "Training rules")

    @staticmethod
    def _init_delta_bias(channels: int, dt_min: float, dt_max: float, dt_floor: float = 1e-4) -> Tensor:
        """Inverse softplus of dt ~ exp(U[log dt_min, log dt_max]) (Mamba's init), so softplus(bias) = dt."""
        dt = torch.exp(torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        return dt + torch.log(-torch.expm1(-dt))

    #: Scan the tokens of several grids as one joint sequence (True) or each grid alone (False).
    joint_grids = False

    def forward(self, x: Tensor, grids: Optional[Tuple[Grid, ...]] = None) -> Tensor:
        """The residual block on the tokens of one or more grids.

        Args:
            x (Tensor): (B, L, C) tokens of ``grids`` laid end to end, each in raster order;
                with ``grids`` None, one sequence (B, L, C) or one token map (B, H, W, C).
            grids (tuple[Grid], optional): the grids ``x`` is made of. A plain Cycle-scan
                scans each grid's tokens separately; :class:`MultiScaleCycleScan` scans them
                as one sequence.

        Returns:
            Tensor: same shape as ``x``.
        """
        if x.dim() == 4:
            return self._residual(x.flatten(1, 2)).view(x.shape)
        if grids is None or len(grids) == 1 or self.joint_grids:
            return self._residual(x)
        sizes = [h * w for h, w in grids]
        if sum(sizes) != x.shape[1]:
            raise ValueError(f'{x.shape[1]} tokens do not match grids {grids}')
        return torch.cat([self._residual(t) for t in x.split(sizes, dim=1)], dim=1)

    def _residual(self, x: Tensor) -> Tensor:
        """(B, L, C) -> (B, L, C): ``x + out_proj(z * out_norm(y))`` over one sequence."""
        xs, z = self.in_proj(self.in_norm(x)).chunk(2, dim=-1)  # (B, L, C) each
        y = self.cycle_scan(xs)  # (B, L, C)
        return x + self.out_proj(z * self.out_norm(y))

    def cycle_scan(self, xs: Tensor) -> Tensor:
        """(B, L, C) -> (B, L, C): scan ``num_repeats`` copies once, gamma-weighted sum of the copies
        (:func:`cycle_selective_scan`; the triton backend never materializes the copies)."""
        channels = xs.shape[-1]
        # The projection is per token, so the copies share it: the scan takes one copy and gamma.
        delta, Bm, Cm = self.ssm_proj(xs).split([channels, self.d_state, self.d_state], dim=-1)

        def channels_first(t: Tensor) -> Tensor:  # (B, L, C) -> (B, C, L), tokens contiguous for the kernels
            return t.transpose(1, 2).contiguous()

        # B and C stay token-major views: the Triton backends want them that way and copy them anyway
        y = cycle_selective_scan(channels_first(xs), channels_first(delta), -torch.exp(self.As_log.float()),
                                 Bm.transpose(1, 2), Cm.transpose(1, 2), self.Ds, self.ssm_proj_bias,
                                 self.gamma[..., 0], delta_softplus=True, backend=self.scan_backend)  # (B, C, L)
        return y.transpose(1, 2)

    def extra_repr(self) -> str:
        return (f'embed_dim={self.embed_dim}, d_state={self.d_state}, num_repeats={self.num_repeats}, '
                f'scan_backend={self.scan_backend!r}')


@MODELS.register_module()
class MultiScaleCycleScan(CycleScan):
    """Cycle-scan over the tokens of all grids as one sequence (HRSAM++'s multi-scale Cycle-scan).

    HRSAM++ applies it after each stage's last block to ``[main; anchor]``: the joint
    sequence is scanned as one, so each scale's tokens read the other's. Same parameters
    (and checkpoint names) as :class:`CycleScan`, which scans each grid on its own.
    """

    joint_grids = True
