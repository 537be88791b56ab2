"""The decoder attention split over key chunks against a float64 loop and upstream's Attention."""
import pytest
import torch
from segment_anything.modeling.transformer import Attention, TwoWayTransformer

from mmhrsam.models.heads.long_key_attention import LongKeyAttention, split_key_matmul, use_long_key_attention


def loop_reference(attn, v):
    """out[b, h, i] = sum_j attn[b, h, i, j] * v[b, h, j], one query at a time in float64."""
    out = torch.zeros(attn.shape[:3] + v.shape[-1:], dtype=torch.float64)
    for b in range(attn.shape[0]):
        for h in range(attn.shape[1]):
            for i in range(attn.shape[2]):
                out[b, h, i] = (attn[b, h, i].double()[:, None] * v[b, h].double()).sum(0)
    return out


@pytest.mark.parametrize('keys', [16384, 12345, 4097])  # whole chunks, a padded last chunk, the smallest split
def test_split_matches_a_float64_loop(keys):
    gen = torch.Generator().manual_seed(keys)
    attn = torch.softmax(torch.randn(2, 3, 7, keys, generator=gen), -1)
    v = torch.randn(2, 3, keys, 16, generator=gen)
    got = split_key_matmul(attn, v)
    assert got.dtype == torch.float32 and got.shape == (2, 3, 7, 16)
    torch.testing.assert_close(got.double(), loop_reference(attn, v), rtol=1e-5, atol=1e-6)


def test_small_grids_and_16_bit_inputs_stay_one_product():
    """Up to 4096 keys (SAM's 64² grid) and for bf16 the result is upstream's bit for bit."""
    attn, v = torch.softmax(torch.randn(1, 8, 7, 4096), -1), torch.randn(1, 8, 4096, 16)
    assert torch.equal(split_key_matmul(attn, v), attn @ v)
    attn, v = attn[..., :2048].repeat(1, 1, 1, 4).bfloat16(), v.repeat(1, 1, 2, 1).bfloat16()
    assert torch.equal(split_key_matmul(attn, v), attn @ v)


def test_module_swap_keeps_parameters_and_matches_upstream():
    torch.manual_seed(0)
    upstream = TwoWayTransformer(depth=2, embedding_dim=64, num_heads=4, mlp_dim=128)
    state = {k: v.clone() for k, v in upstream.state_dict().items()}
    image = torch.randn(1, 64, 80, 96)  # 7680 image tokens
    pe, tokens = torch.randn(1, 64, 80, 96), torch.randn(1, 9, 64)
    with torch.no_grad():
        expected = upstream(image, pe, tokens)
        swapped = use_long_key_attention(upstream)
        assert not any(type(m) is Attention for m in swapped.modules())
        assert sum(isinstance(m, LongKeyAttention) for m in swapped.modules()) == 7
        assert swapped.state_dict().keys() == state.keys()
        assert all(torch.equal(swapped.state_dict()[k], v) for k, v in state.items())
        got = swapped(image, pe, tokens)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
