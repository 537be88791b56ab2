"""GPU backends (run on a CUDA machine; skipped elsewhere): exactness against Plain Swin and
the float64 reference, half precision, batching and gradients."""
import pytest
import torch

from mmhrsam.models.layers import AxialRoPE
from mmhrsam.ops.attention import available_backends
from mmhrsam.registry import MODELS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
C, HEADS = 128, 2


def backends():
    return available_backends('cuda') if torch.cuda.is_available() else []


def build(type_, **kw):
    return MODELS.build(dict(type=type_, embed_dim=C, num_heads=HEADS, **kw)).cuda()


@pytest.mark.parametrize('backend', backends())
@pytest.mark.parametrize('h,w', [(32, 32), (40, 27)])
@pytest.mark.parametrize('type_', ['FlashSwinAttention', 'KVPadSwinAttention'])
def test_cuda_backend_matches_float64_reference(backend, h, w, type_):
    torch.manual_seed(0)
    attn = build(type_, window_size=16, shift_size=8, backend=backend)
    ref = build(type_, window_size=16, shift_size=8, backend='reference').double()
    ref.load_state_dict(attn.state_dict())
    x = torch.randn(3, h, w, C, device='cuda')
    rope = AxialRoPE(C // HEADS).cuda()
    with torch.no_grad():
        expected = ref(x.double(), rope=rope)
        out32 = attn(x, rope=rope)
        with torch.autocast('cuda', dtype=torch.bfloat16):
            out16 = attn(x, rope=rope)
    rel = lambda a: ((a.double() - expected).norm() / expected.norm()).item()  # noqa: E731
    assert rel(out32) < 1e-3  # TF32 / fp32 kernels
    assert rel(out16) < 2e-2  # bf16 operands
    single = torch.cat([attn(x[i:i + 1], rope=rope) for i in range(3)])
    torch.testing.assert_close(single, out32, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize('backend', backends())
def test_cuda_flash_equals_plain_swin(backend):
    torch.manual_seed(1)
    plain = build('PlainSwinAttention', window_size=16, shift_size=8, backend='sdpa')
    flash = build('FlashSwinAttention', window_size=16, shift_size=8, backend=backend)
    flash.load_state_dict(plain.state_dict())
    x = torch.randn(2, 48, 40, C, device='cuda')
    with torch.no_grad():
        torch.testing.assert_close(flash(x), plain(x), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize('backend', backends())
def test_cuda_gradients_match_reference(backend):
    torch.manual_seed(2)
    attn = build('KVPadSwinAttention', window_size=16, shift_size=8, backend=backend)
    ref = build('KVPadSwinAttention', window_size=16, shift_size=8, backend='reference')
    ref.load_state_dict(attn.state_dict())
    x = torch.randn(2, 24, 40, C, device='cuda')
    grads = []
    for m in (attn, ref):
        m.zero_grad()
        m(x).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert ((grads[0] - grads[1]).norm() / grads[1].norm()).item() < 1e-3
