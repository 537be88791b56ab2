"""PatchEmbed: the GEMM form used on CUDA equals the strided convolution."""
import pytest
import torch
import torch.nn.functional as F

from mmhrsam.models.layers.patch_embed import PatchEmbed


@pytest.mark.parametrize('size', [(32, 48), (37, 21)])
def test_gemm_form_equals_convolution(size):
    torch.manual_seed(0)
    embed = PatchEmbed(patch_size=8, in_channels=3, embed_dim=24)
    img = torch.randn(2, 3, *size, dtype=torch.float64)
    embed = embed.double()
    padded = PatchEmbed.pad(img, 8)
    reference = F.conv2d(padded, embed.proj.weight, embed.proj.bias, stride=8).permute(0, 2, 3, 1)
    got = embed.forward_as_matmul(padded)
    assert got.shape == (2, -(-size[0] // 8), -(-size[1] // 8), 24)
    torch.testing.assert_close(got, reference, rtol=1e-12, atol=1e-12)
    # the CPU forward is the convolution itself
    torch.testing.assert_close(embed(img), reference, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_forward_matches_cpu():
    torch.manual_seed(0)
    embed = PatchEmbed(patch_size=16, in_channels=3, embed_dim=64)
    img = torch.randn(1, 3, 100, 130)
    torch.testing.assert_close(embed.cuda()(img.cuda()).cpu(), embed.cpu()(img), rtol=1e-4, atol=1e-4)
