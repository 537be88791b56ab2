"""The pre-norm transformer block every HRSAM encoder stacks."""
from typing import Optional, Tuple

from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from mmhrsam.ops.attention import Grid
from mmhrsam.registry import build_model

from .mlp import Mlp
from .rope import AxialRoPE


class TransformerBlock(nn.Module):
    """Pre-norm transformer block on raster token sequences of one or more grids.

    ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, each branch with stochastic depth.

    Args:
        dim (int): channels C.
        mlp_ratio (float): MLP hidden width / C.
        attn_cfg (dict): config of a registered attention variant (embed_dim, num_heads,
            window arguments included).
        drop_path (float): stochastic-depth rate of both residual branches.
    """

    def __init__(self, dim: int, mlp_ratio: float, attn_cfg: dict, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = build_model(attn_cfg)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = StochasticDepth(drop_path, mode='row') if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, grids: Tuple[Grid, ...], rope: Optional[AxialRoPE]) -> Tensor:
        """x: (B, L, C) tokens of ``grids`` laid end to end -> (B, L, C)."""
        x = x + self.drop_path(self.attn(self.norm1(x), grids, rope))
        return x + self.drop_path(self.mlp(self.norm2(x)))
