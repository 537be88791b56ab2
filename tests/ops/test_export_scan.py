"""The traceable ('export') selective-scan backend against the float64 reference loop."""
import pytest
import torch

from mmhrsam.models.layers import CycleScan
from mmhrsam.ops.selective_scan import (SCAN_BACKENDS, cycle_selective_scan, repeat_cycle_selective_scan,
                                                 selective_scan)
from mmhrsam.ops.selective_scan.export_scan import export_cycle_selective_scan


def make_inputs(batch, channels, d_state, length, copies, seed=0):
    """Scan inputs with a wide range of time steps and decays (A in [-4, -0.05])."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, channels, length, generator=g)
    delta = 2 * torch.randn(batch, channels, length, generator=g)
    A = -(torch.rand(channels, d_state, generator=g) * 4 + 0.05)
    B = torch.randn(batch, d_state, length, generator=g)
    C = torch.randn(batch, d_state, length, generator=g)
    D = torch.randn(channels, generator=g)
    bias = torch.randn(channels, generator=g)
    gamma = torch.randn(channels, copies, generator=g)
    return u, delta, A, B, C, D, bias, gamma


def reference(u, delta, A, B, C, D, bias, gamma, delta_softplus=True):
    """The definition: the repeated sequence through the float64 loop, copies weighted and summed."""
    args = [None if t is None else t.double() for t in (u, delta, A, B, C, D, bias, gamma)]
    return repeat_cycle_selective_scan(*args, delta_softplus=delta_softplus, backend='reference')


@pytest.mark.parametrize('batch,length,copies,chunk_size', [
    (1, 1, 3, None),  # one token
    (2, 37, 3, None),  # length not a multiple of the chunk: padded tail
    (1, 64, 1, 8),  # one copy: the plain scan
    (3, 50, 2, 7),
    (1, 40, 4, 64),  # one chunk longer than the sequence
])
def test_cycle_scan_matches_reference(batch, length, copies, chunk_size):
    args = make_inputs(batch, 6, 4, length, copies, seed=length)
    out = export_cycle_selective_scan(*args, chunk_size=chunk_size)
    assert out.shape == (batch, 6, length) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), reference(*args), rtol=1e-4, atol=1e-4)


def test_optional_inputs_off_and_no_softplus():
    u, delta, A, B, C, _, _, gamma = make_inputs(2, 5, 3, 29, 3, seed=1)
    delta = delta.abs()  # time steps used as they are: keep them positive
    out = cycle_selective_scan(u, delta, A, B, C, None, None, gamma, delta_softplus=False, backend='export')
    torch.testing.assert_close(out.double(), reference(u, delta, A, B, C, None, None, gamma, delta_softplus=False),
                               rtol=1e-4, atol=1e-4)


def test_plain_backend_registered_and_matches_reference():
    assert 'export' in SCAN_BACKENDS
    u, delta, A, B, C, D, bias, _ = make_inputs(2, 5, 3, 33, 1, seed=2)
    torch.testing.assert_close(selective_scan(u, delta, A, B, C, D, bias, backend='export'),
                               selective_scan(u, delta, A, B, C, D, bias, backend='reference'), rtol=1e-4, atol=1e-4)


def test_bf16_inputs_return_bf16_close_to_reference():
    args = make_inputs(1, 4, 3, 30, 3, seed=3)
    low = [t.bfloat16() for t in args]
    out = cycle_selective_scan(*low, backend='export')
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), reference(*low), rtol=2e-2, atol=2e-2)


def test_cycle_scan_module_export_backend_equals_reference_backend():
    torch.manual_seed(0)
    module = CycleScan(embed_dim=8, d_state=4, scan_backend='export')
    with torch.no_grad():
        module.gamma.add_(torch.randn_like(module.gamma))
        x = torch.randn(2, 45, 8)
        out = module(x)
        module.scan_backend = 'reference'
        expected = module(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_gradients_match_reference():
    args = [t.requires_grad_() for t in make_inputs(1, 3, 2, 17, 3, seed=4)]
    export_cycle_selective_scan(*args, chunk_size=5).sum().backward()
    grads = [t.grad.clone() for t in args]
    refs = [t.detach().double().requires_grad_() for t in args]
    repeat_cycle_selective_scan(*refs, backend='reference').sum().backward()
    for grad, ref in zip(grads, refs):
        torch.testing.assert_close(grad.double(), ref.grad, rtol=1e-4, atol=1e-4)
