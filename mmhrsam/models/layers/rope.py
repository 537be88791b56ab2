"""2-D axial rotary position embedding, applied to q and k in window order."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class AxialRoPE(nn.Module):
    """Axial RoPE as in the released HRSAM weights.

    Per head, the first half of the channels rotates with the row position and the
    second half with the column position. Each half uses ``head_dim // 4`` frequencies
    ``theta ** (-2i / (head_dim // 2))``, each shared by an adjacent channel pair, and a
    pair ``(x[2i], x[2i+1])`` rotates as ``x * cos + (x[2i+1], -x[2i]) * sin``.
    Positions are ``pos_scale`` times the (row, col) on the padded grid, so keys in
    virtual slots (KV-only padding) rotate with the slot they fill. Attention is local,
    so the relative offsets the model sees stay bounded at any resolution.

    Args:
        head_dim (int): channels per head, a multiple of 4.
        theta (float): frequency base.
        pos_scale (float): scale from grid index to position.
    """

    def __init__(self, head_dim: int = 64, theta: float = 10000.0, pos_scale: float = 0.5):
        super().__init__()
        if head_dim % 4:
            raise ValueError(f'head_dim must be a multiple of 4 for axial RoPE, got {head_dim}')
        half = head_dim // 2
        freqs = theta ** (-torch.arange(0, half, 2, dtype=torch.float64) / half)  # (head_dim // 4,)
        self.register_buffer('freqs', freqs.float(), persistent=False)
        self.head_dim = head_dim
        self.pos_scale = pos_scale

    def angles(self, pos: Tensor) -> Tensor:
        """(L, 2) positions -> (L, head_dim) rotation angle of every channel."""
        a = (pos.float() * self.pos_scale)[:, :, None] * self.freqs  # (L, 2, head_dim // 4)
        return a.repeat_interleave(2, dim=-1).flatten(1)               # rows then columns

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        """Rotate ``x`` (B, L, H, head_dim) by the positions ``pos`` (L, 2).

        The rotation is computed in float32 and cast to ``x``'s dtype, so bf16/fp16
        inputs stay in their dtype (the original promoted them to float32; ``docs/architecture.md``).
        """
        ang = self.angles(pos)[:, None, :]  # (L, 1, head_dim)
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        pairs = x.unflatten(-1, (-1, 2))
        rotated = torch.stack([pairs[..., 1], -pairs[..., 0]], dim=-1).flatten(-2)
        return x * cos + rotated * sin

    def extra_repr(self) -> str:
        return f'head_dim={self.head_dim}, pos_scale={self.pos_scale}'
