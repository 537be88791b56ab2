"""DilatedAttention (SAM-Lightening's Dilated Flash Attention) against an independent dense
reference: full attention over all token pairs with a boolean mask that allows a pair only
when both tokens lie in the same dilation group (row % d and column % d equal).

Covered: grids and 1-D sequences whose length is not a multiple of the rate, grids smaller
than the rate, every offset group (odd ones included: a reference implementation that only
attends even offsets fails these), batches > 1 whose samples differ, gradients, and several
maps at once."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmhrsam.ops.attention import available_backends
from mmhrsam.registry import MODELS

C, HEADS = 24, 3
BACKENDS = available_backends('cpu')


def build(dilation, backend):
    return MODELS.build(dict(type='DilatedAttention', embed_dim=C, num_heads=HEADS, dilation=dilation,
                             backend=backend))


def same_group_mask(h, w, d):
    """(h*w, h*w) bool: True where tokens i and j are in the same dilation group (slow, explicit)."""
    coords = [(y, x) for y in range(h) for x in range(w)]
    return torch.tensor([[yi % d == yj % d and xi % d == xj % d for (yj, xj) in coords] for (yi, xi) in coords])


def dense_reference(attn, x, allowed):
    """softmax(q k^T / sqrt(d_head), masked to ``allowed``) v, projected; float64. x: (B, L, C)."""
    w_qkv, b_qkv = attn.qkv.weight.double(), attn.qkv.bias.double()
    q, k, v = F.linear(x.double(), w_qkv, b_qkv).chunk(3, -1)
    q, k, v = (t.unflatten(-1, (HEADS, -1)).transpose(1, 2) for t in (q, k, v))  # (B, heads, L, d)
    scores = q @ k.transpose(-1, -2) / math.sqrt(C // HEADS)
    scores = scores.masked_fill(~allowed, float('-inf'))
    out = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)
    return F.linear(out, attn.proj.weight.double(), attn.proj.bias.double())


# (h, w, d): multiples of d, grids not a multiple of d in one or both sides, 1-D sequences
# (one row) of odd length, a grid smaller than the rate (some groups empty), rate 1 (global).
CASES = [(8, 8, 2), (7, 9, 2), (9, 7, 3), (6, 11, 4), (1, 13, 2), (1, 10, 3), (11, 1, 4), (3, 2, 4), (5, 6, 1)]


# FlexAttention runs eagerly (and slowly) on the CPU: two cases suffice for it.
PAIRS = [(case, b) for case in CASES for b in BACKENDS if b != 'flex'] + [
    (case, 'flex') for case in ((7, 9, 2), (1, 13, 2)) if 'flex' in BACKENDS]


@pytest.mark.parametrize('case,backend', PAIRS)
def test_equals_dense_masked_reference(case, backend):
    h, w, d = case
    torch.manual_seed(h * 100 + w * 10 + d)
    attn = build(d, backend)
    x = torch.randn(3, h, w, C)  # three different samples
    with torch.no_grad():
        out = attn(x)
    ref = dense_reference(attn, x.reshape(3, h * w, C), same_group_mask(h, w, d))
    torch.testing.assert_close(out.reshape(3, h * w, C).double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('h,w,d', [(5, 7, 2), (1, 9, 2), (5, 4, 3)])
def test_every_offset_group_mixes_within_itself_only(h, w, d):
    """Perturb one token of each offset group (odd offsets included): exactly the outputs of
    that group change, and every token of the group changes (it is attended)."""
    torch.manual_seed(0)
    attn = build(d, 'sdpa')
    x = torch.randn(1, h, w, C)
    with torch.no_grad():
        base = attn(x)
        for oy in range(min(d, h)):
            for ox in range(min(d, w)):
                y = x.clone()
                y[0, oy, ox] += 1.0
                changed = (attn(y) - base).abs().amax(-1)[0] > 1e-6  # (h, w)
                ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
                group = (ys % d == oy) & (xs % d == ox)
                assert torch.equal(changed, group), (oy, ox)


def test_samples_of_a_batch_stay_apart():
    torch.manual_seed(0)
    attn = build(2, 'sdpa')
    x = torch.randn(4, 5, 7, C)
    with torch.no_grad():
        together = attn(x)
        alone = torch.cat([attn(x[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('backend', [b for b in BACKENDS if b != 'flex'])  # CPU flex: forward only
def test_gradients_equal_the_reference(backend):
    torch.manual_seed(0)
    h, w, d = 7, 5, 2
    attn = build(d, backend).double()
    x = torch.randn(2, h, w, C, dtype=torch.float64, requires_grad=True)
    attn(x).square().sum().backward()
    grad, wgrad = x.grad.clone(), attn.qkv.weight.grad.clone()
    x.grad, attn.qkv.weight.grad = None, None
    dense_reference(attn, x.reshape(2, h * w, C), same_group_mask(h, w, d)).square().sum().backward()
    # the reference backend computes the softmax in float32
    torch.testing.assert_close(grad, x.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(wgrad, attn.qkv.weight.grad, rtol=1e-4, atol=1e-6)


def test_several_maps_group_within_each_map():
    torch.manual_seed(0)
    attn = build(2, 'sdpa')
    a, b = torch.randn(2, 5, 6, C), torch.randn(2, 3, 3, C)
    with torch.no_grad():
        out = attn(torch.cat([a.flatten(1, 2), b.flatten(1, 2)], dim=1), ((5, 6), (3, 3)))
        out_a, out_b = out[:, :30].view_as(a), out[:, 30:].view_as(b)
    for x, out in ((a, out_a), (b, out_b)):
        _, h, w, _ = x.shape
        ref = dense_reference(attn, x.reshape(2, h * w, C), same_group_mask(h, w, 2))
        torch.testing.assert_close(out.reshape(2, h * w, C).double(), ref, rtol=1e-5, atol=1e-5)


def test_bad_rate_is_an_error():
    with pytest.raises(ValueError, match='dilation'):
        build(0, 'sdpa')
