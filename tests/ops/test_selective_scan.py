"""Selective-scan backends against an independent sequential float64 loop written here."""
import importlib
import sys
import time
import types

import pytest
import torch

from mmhrsam.ops import Backend, BackendUnavailableError, get_backends, set_backends
from mmhrsam.ops.selective_scan import (SCAN_BACKENDS, chunked_selective_scan, reference_selective_scan,
                                        resolve_scan_backend, selective_scan)

adapter = importlib.import_module('mmhrsam.ops.selective_scan.mamba_ssm')
ARG_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


def loop_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True):
    """The S6 recurrence, one token at a time, per sample and channel, in float64."""
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.double().view(1, -1, 1)
    dt = torch.log1p(torch.exp(delta)) if delta_softplus else delta
    batch, channels, length = u.shape
    state = torch.zeros(batch, channels, A.shape[1], dtype=torch.float64)
    out = []
    for t in range(length):
        a_bar = torch.exp(torch.einsum('bd,dn->bdn', dt[:, :, t], A))
        state = a_bar * state + torch.einsum('bd,bn->bdn', dt[:, :, t] * u[:, :, t], B[:, :, t])
        out.append(torch.einsum('bdn,bn->bd', state, C[:, :, t]))
    y = torch.stack(out, dim=2)
    if D is not None:
        y = y + D.double().view(1, -1, 1) * u
    return y


def make_inputs(batch, channels, d_state, length, seed=0, dtype=torch.float32, delta_shift=-1.0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, channels, length, generator=g)
    delta = torch.randn(batch, channels, length, generator=g) + delta_shift
    A = -torch.exp(torch.randn(channels, d_state, generator=g))  # negative, spread over decades
    B = torch.randn(batch, d_state, length, generator=g)
    C = torch.randn(batch, d_state, length, generator=g)
    D = torch.randn(channels, generator=g)
    delta_bias = 0.5 * torch.randn(channels, generator=g)
    return [t.to(dtype) for t in (u, delta, A, B, C, D, delta_bias)]


@pytest.mark.parametrize('batch,length', [(1, 1), (2, 7), (3, 20)])
def test_reference_matches_loop(batch, length):
    args = make_inputs(batch, 4, 3, length, seed=length)
    y = reference_selective_scan(*args)
    assert y.dtype == torch.float32 and y.shape == (batch, 4, length)
    torch.testing.assert_close(y.double(), loop_scan(*args), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('batch,length,chunk_size,channel_block', [
    (1, 1, None, None),
    (2, 1, 16, 1),
    (1, 64, 16, None),  # multiple of the chunk
    (2, 100, 16, 2),  # not a multiple
    (3, 37, 8, 3),
    (2, 57, 64, 5),  # one partial chunk
    (1, 3000, None, 3),  # ~55 chunks of 55
    (2, 3000, 128, None),
])
def test_chunked_matches_loop_fp32(batch, length, chunk_size, channel_block):
    args = make_inputs(batch, 5, 4, length, seed=length + batch)
    y = chunked_selective_scan(*args, chunk_size=chunk_size, channel_block=channel_block)
    assert y.dtype == torch.float32 and y.shape == (batch, 5, length)
    torch.testing.assert_close(y.double(), loop_scan(*args), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_chunked_half_inputs(dtype):
    args = make_inputs(2, 6, 4, 300, seed=3, dtype=dtype)
    y = chunked_selective_scan(*args, chunk_size=32)
    assert y.dtype == dtype
    expected = loop_scan(*args)  # same rounded inputs, float64 math: only the output rounding differs
    torch.testing.assert_close(y.double(), expected, rtol=2e-2, atol=2e-2 * expected.abs().max().item())


def test_selective_scan_switch_matches_loop():
    args = make_inputs(2, 3, 2, 50, seed=9)
    expected = loop_scan(*args)
    for backend in ('auto', 'chunked', 'reference'):
        torch.testing.assert_close(selective_scan(*args, backend=backend).double(), expected, rtol=1e-4, atol=1e-4)
    pos = [args[0], args[1].abs(), *args[2:5]]  # without softplus dt = delta, which must be >= 0
    for backend in ('chunked', 'reference'):
        torch.testing.assert_close(selective_scan(*pos, delta_softplus=False, backend=backend).double(),
                                   loop_scan(*pos, delta_softplus=False), rtol=1e-4, atol=1e-4)


def test_chunked_gradients_match_loop():
    args = make_inputs(2, 5, 3, 45, seed=11)
    grad_out = torch.randn(2, 5, 45, generator=torch.Generator().manual_seed(1))
    ours = [t.clone().requires_grad_() for t in args]
    chunked_selective_scan(*ours, chunk_size=8, channel_block=2).backward(grad_out)
    ref = [t.double().requires_grad_() for t in args]
    loop_scan(*ref).backward(grad_out.double())
    for name, a, b in zip(ARG_NAMES, ours, ref):
        torch.testing.assert_close(a.grad.double(), b.grad, rtol=1e-4, atol=1e-4, msg=f'grad of {name}')


def test_reference_gradients_match_loop():
    args = make_inputs(1, 3, 2, 12, seed=12)
    ours = [t.double().requires_grad_() for t in args]
    ref = [t.double().requires_grad_() for t in args]
    reference_selective_scan(*ours).sum().backward()
    loop_scan(*ref).sum().backward()
    for name, a, b in zip(ARG_NAMES, ours, ref):
        torch.testing.assert_close(a.grad, b.grad, msg=f'grad of {name}')


def test_chunked_gradcheck_double():
    args = [t.double().requires_grad_() for t in make_inputs(2, 3, 2, 11, seed=5)]
    assert torch.autograd.gradcheck(lambda *a: chunked_selective_scan(*a, chunk_size=4, channel_block=2), args)


def test_chunked_grad_mode_without_grad_inputs_equals_no_grad():
    """Both code paths (in place / differentiable) give the same numbers."""
    args = make_inputs(2, 4, 3, 70, seed=4)
    with torch.no_grad():
        y0 = chunked_selective_scan(*args, chunk_size=16)
    args[2] = args[2].clone().requires_grad_()  # only A: the autograd path
    y1 = chunked_selective_scan(*args, chunk_size=16)
    torch.testing.assert_close(y1.detach(), y0, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('which', [(2, ), (0, 4), (1, 3, 5, 6)])
def test_chunked_partial_gradients(which):
    """Only some inputs require grad: those get the loop's gradients, the others none."""
    args = make_inputs(2, 5, 3, 40, seed=7)
    ours = [t.clone().requires_grad_(i in which) for i, t in enumerate(args)]
    chunked_selective_scan(*ours, chunk_size=8, channel_block=2).sum().backward()
    ref = [t.double().requires_grad_(i in which) for i, t in enumerate(args)]
    loop_scan(*ref).sum().backward()
    for i, (a, b) in enumerate(zip(ours, ref)):
        if i in which:
            torch.testing.assert_close(a.grad.double(), b.grad, rtol=1e-4, atol=1e-4, msg=ARG_NAMES[i])
        else:
            assert a.grad is None


def test_chunked_bf16_gradients():
    args = make_inputs(1, 4, 3, 50, seed=8)
    ours = [t.to(torch.bfloat16).requires_grad_() if t.dim() == 3 else t.clone().requires_grad_() for t in args]
    chunked_selective_scan(*ours).float().sum().backward()
    ref = [t.detach().double().requires_grad_() for t in ours]
    loop_scan(*ref).sum().backward()
    for name, a, b in zip(ARG_NAMES, ours, ref):
        assert a.grad.dtype == a.dtype, name
        scale = b.grad.abs().max().item()
        torch.testing.assert_close(a.grad.double(), b.grad, rtol=2e-2, atol=2e-2 * scale, msg=name)


def test_stability_large_dt_and_long_sequence():
    u, delta, A, B, C, D, bias = make_inputs(1, 4, 8, 20000, seed=2)
    A = A * 20  # strongly decaying states
    ours = [t.clone().requires_grad_() for t in (u, delta.abs() + 20.0, A, B, C, D, bias)]  # dt ~ 20+
    y = chunked_selective_scan(*ours)
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in ours)
    # with dt*|A| >> 100 the state forgets everything: y_t = C_t . (dt_t B_t u_t) + D u_t
    dt = torch.nn.functional.softplus(ours[1].detach() + bias[:, None])
    instant = torch.einsum('bnl,bnl->bl', B, C)[:, None] * dt * u + D[:, None] * u
    torch.testing.assert_close(y.detach(), instant, rtol=1e-4, atol=1e-3)
    # slow decay over a long sequence: compare to the loop
    args = make_inputs(1, 2, 4, 10000, seed=6, delta_shift=-6.0)
    args[2] = args[2] / 100
    torch.testing.assert_close(chunked_selective_scan(*args).double(), loop_scan(*args), rtol=1e-3, atol=1e-3)


def test_chunked_full_size_practical():
    """One Cycle-scan at 1024^2: C=768, N=32, L=3*4096, forward on CPU."""
    batch, channels, d_state, length = 1, 768, 32, 3 * 4096
    g = torch.Generator().manual_seed(0)
    u = torch.randn(batch, channels, length, generator=g)
    delta = torch.randn(batch, channels, length, generator=g) - 3
    A = -torch.arange(1, d_state + 1, dtype=torch.float32).repeat(channels, 1)
    B = torch.randn(batch, d_state, length, generator=g)
    C = torch.randn(batch, d_state, length, generator=g)
    D, bias = torch.ones(channels), torch.zeros(channels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core (~1-2 s): immune to OpenMP stalls when CI's cores are shared
    try:
        start = time.perf_counter()
        with torch.no_grad():
            y = chunked_selective_scan(u, delta, A, B, C, D, bias)
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    assert elapsed < 60, f'{elapsed:.1f} s'
    assert y.shape == u.shape and torch.isfinite(y).all()
    idx = [0, 500, 767]  # channels are independent: spot-check three against the loop
    expected = loop_scan(u[:, idx], delta[:, idx], A[idx], B, C, D[idx], bias[idx])
    torch.testing.assert_close(y[:, idx].double(), expected, rtol=1e-3, atol=1e-3)


# ----------------------------------------------------------------------------- switch
@pytest.fixture
def clean_default(monkeypatch):
    monkeypatch.delenv('MMHRSAM_SCAN_BACKEND', raising=False)
    set_backends(scan='auto')
    yield
    set_backends(scan='auto')


@pytest.mark.skipif(adapter._load_selective_scan_fn()[0] is not None, reason='mamba-ssm is installed')
def test_mamba_ssm_missing_is_a_clear_error(clean_default):
    args = make_inputs(1, 2, 2, 5)
    with pytest.raises(BackendUnavailableError, match='pip install mamba-ssm'):
        selective_scan(*args, backend='mamba_ssm')
    assert issubclass(BackendUnavailableError, RuntimeError)
    assert resolve_scan_backend('auto', args[0]) == 'chunked'
    torch.testing.assert_close(selective_scan(*args).double(), loop_scan(*args), rtol=1e-4, atol=1e-4)


def test_cpu_inputs_never_pick_mamba_ssm(clean_default):
    u = torch.zeros(1, 2, 3)
    assert adapter.mamba_ssm_unavailable(u) is not None
    assert resolve_scan_backend('auto', u) == 'chunked'


def test_default_backend_and_env_var(clean_default, monkeypatch):
    u = torch.zeros(1, 2, 3)
    assert get_backends()['scan'] == 'auto'
    monkeypatch.setenv('MMHRSAM_SCAN_BACKEND', 'reference')
    assert resolve_scan_backend('auto', u) == 'reference'
    set_backends(scan='chunked')  # the function wins over the variable
    assert resolve_scan_backend('auto', u) == 'chunked'
    assert resolve_scan_backend('reference', u) == 'reference'  # explicit names are not overridden
    set_backends(scan='mamba_ssm')  # cannot run on CPU: auto falls back, with a warning
    with pytest.warns(UserWarning, match='mamba_ssm'):
        assert resolve_scan_backend('auto', u) == 'chunked'
    with pytest.raises(ValueError):
        set_backends(scan='cuda_magic')
    with pytest.raises(ValueError):
        selective_scan(*make_inputs(1, 2, 2, 3), backend='cuda_magic')
    set_backends(scan='auto')
    monkeypatch.setenv('MMHRSAM_SCAN_BACKEND', 'nope')
    with pytest.raises(ValueError, match='MMHRSAM_SCAN_BACKEND'):
        get_backends()['scan']


def test_new_backend_is_one_dict_entry(clean_default, monkeypatch):
    calls = []

    def fake(*args):
        calls.append(len(args))
        return reference_selective_scan(*args)

    monkeypatch.setitem(SCAN_BACKENDS, 'fake', Backend(fake))
    args = make_inputs(1, 2, 2, 4)
    selective_scan(*args, backend='fake')
    set_backends(scan='fake')
    selective_scan(*args)
    assert calls == [8, 8]


def test_shape_validation():
    u, delta, A, B, C, D, bias = make_inputs(2, 3, 4, 5)
    with pytest.raises(ValueError, match='B must be'):
        selective_scan(u, delta, A, B[:, :, :4], C, D, bias)
    with pytest.raises(ValueError, match='A must be'):
        selective_scan(u, delta, A[:2], B, C, D, bias)
    with pytest.raises(ValueError, match='D must be'):
        selective_scan(u, delta, A, B, C, D[:2], bias)


def test_mamba_ssm_adapter_marshals_arguments(monkeypatch):
    """With a stand-in for mamba-ssm's kernel: dtypes, layout and keywords it is called with."""
    seen = {}

    def fake_selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                               return_last_state=False):
        seen.update(dtypes=(u.dtype, delta.dtype, A.dtype, B.dtype, C.dtype, D.dtype, delta_bias.dtype),
                    contiguous=all(t.is_contiguous() for t in (u, delta, A, B, C)), z=z,
                    softplus=delta_softplus, last=return_last_state)
        return loop_scan(u, delta, A, B, C, D, delta_bias, delta_softplus).to(u.dtype)

    module = types.ModuleType('mamba_ssm.ops.selective_scan_interface')
    module.selective_scan_fn = fake_selective_scan_fn
    for name in ('mamba_ssm', 'mamba_ssm.ops'):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, 'mamba_ssm.ops.selective_scan_interface', module)
    monkeypatch.setattr(adapter, 'mamba_ssm_unavailable', lambda u: None)  # pretend the inputs are CUDA
    adapter._load_selective_scan_fn.cache_clear()
    try:
        u, delta, A, B, C, D, bias = make_inputs(2, 3, 2, 6, dtype=torch.bfloat16)
        y = selective_scan(u.transpose(1, 2).contiguous().transpose(1, 2), delta.float(), A, B.float(), C, D, bias,
                           backend='mamba_ssm')
    finally:
        adapter._load_selective_scan_fn.cache_clear()
    bf16, f32 = torch.bfloat16, torch.float32
    assert seen == dict(dtypes=(bf16, bf16, f32, bf16, bf16, f32, f32), contiguous=True, z=None, softplus=True,
                        last=False)
    assert y.dtype == bf16
