"""Patch embedding: the image cut into non-overlapping patches, each projected to a token."""
import torch.nn.functional as F
from torch import Tensor, nn


class PatchEmbed(nn.Module):
    """Zero-pad bottom/right to a multiple of ``patch_size``, then a strided convolution.

    Args:
        patch_size (int): patch side and stride.
        in_channels (int): image channels.
        embed_dim (int): token channels C.
    """

    def __init__(self, patch_size: int = 16, in_channels: int = 3, embed_dim: int = 768):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)

    @staticmethod
    def pad(img: Tensor, multiple: int) -> Tensor:
        """(B, 3, H, W) -> (B, 3, ceil(H/m)*m, ceil(W/m)*m), zeros at the bottom and right."""
        H, W = img.shape[-2:]
        return F.pad(img, (0, (-W) % multiple, 0, (-H) % multiple))

    def forward(self, img: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, ceil(H/p), ceil(W/p), C) tokens, channels last."""
        return self.proj(self.pad(img, self.patch_size)).permute(0, 2, 3, 1)
