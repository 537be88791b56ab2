"""Triton selective scan: run through Triton's interpreter on CPU against a float64 loop written here.

Triton's interpreter only works in a process that had TRITON_INTERPRET=1 before triton was first
imported (triton's own ``tl.zeros``, ``tl.sum``, ... are ``@jit`` functions decorated at that
import, and torch imports triton early). So ``test_interpreter_suite`` runs this file again in a
subprocess with the variable set, where the ``interp`` tests run (here they skip), and fails with
the subprocess's report if any of them fails. Sizes are tiny: the interpreter runs every program of
the grid in Python. A CUDA test (skipped without a GPU) compares with the chunked backend at a moderate
size, and a frontend test builds every kernel's Triton IR for sm_90 without a GPU (it catches what
the interpreter forgives, e.g. non-constexpr globals).
"""
import importlib
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from triton_interpreter import run_interpreter_suite

MODULE = 'mmhrsam.ops.selective_scan.triton_scan'
CYCLE_MODULE = 'mmhrsam.ops.selective_scan.triton_cycle_scan'
PACKAGE = 'mmhrsam.ops.selective_scan'
ARG_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


def loop_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True):
    """h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t,  y_t = <C_t, h_t> + D u_t, one token at a time, float64."""
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    dt = delta if delta_bias is None else delta + delta_bias.double()[None, :, None]
    if delta_softplus:
        dt = F.softplus(dt)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[:, :, None] * B[:, None, :, t]
        ys.append((h * C[:, None, :, t]).sum(-1))
    y = torch.stack(ys, dim=2)
    return y if D is None else y + D.double()[None, :, None] * u


def make_inputs(batch, channels, d_state, length, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, channels, length, generator=g)
    delta = torch.randn(batch, channels, length, generator=g) - 1.0
    A = -torch.exp(torch.randn(channels, d_state, generator=g))  # decays spread over decades
    B = torch.randn(batch, d_state, length, generator=g)
    C = torch.randn(batch, d_state, length, generator=g)
    D = torch.randn(channels, generator=g)
    delta_bias = 0.5 * torch.randn(channels, generator=g)
    return [t.to(dtype) if t.dim() == 3 else t for t in (u, delta, A, B, C, D, delta_bias)]


def assert_close(actual, expected, rel, name=''):
    """max |actual - expected| <= rel * max |expected| (gradients near zero have no useful relative error)."""
    err = (actual.double() - expected.double()).abs().max().item()
    scale = expected.abs().max().item()
    assert err <= rel * max(scale, 1e-3), f'{name}: max error {err:.3g} vs scale {scale:.3g}'


def interpreter_process() -> bool:
    """Whether triton was imported under TRITON_INTERPRET=1 in this process (its stdlib is interpreted)."""
    try:
        import triton.language as tl
        from triton.runtime.interpreter import InterpretedFunction
    except Exception:  # noqa: BLE001
        return False
    return isinstance(tl.zeros, InterpretedFunction)


INTERP = interpreter_process()
interp = pytest.mark.skipif(not INTERP, reason='runs in the TRITON_INTERPRET=1 subprocess of test_interpreter_suite')
not_interp = pytest.mark.skipif(INTERP, reason='runs in the main test process')


@pytest.fixture(scope='module')
def ts():
    """``triton_scan`` with kernels defined for the interpreter."""
    mod = importlib.import_module(MODULE)
    if mod.triton is None or not mod.INTERPRETED:
        pytest.skip(f'triton interpreter unavailable: {mod.TRITON_IMPORT_ERROR or "not interpreted"}')
    try:
        mod.triton_selective_scan(*make_inputs(1, 2, 2, 3))
    except Exception as e:  # noqa: BLE001
        pytest.skip(f'triton interpreter cannot run here: {type(e).__name__}: {e}')
    return mod


@pytest.fixture(scope='module')
def tc(ts):
    """``triton_cycle_scan`` (the periodic op), kernels defined for the interpreter."""
    return importlib.import_module(CYCLE_MODULE)


@not_interp
def test_interpreter_suite():
    """This file's ``interp`` tests in a fresh process with TRITON_INTERPRET=1 (see the module docstring)."""
    run_interpreter_suite(__file__)


class _Spy:
    """Counts launches of a kernel (``kernel[grid](...)``)."""

    def __init__(self, kernel):
        self.kernel, self.launches = kernel, 0

    def __getitem__(self, grid):
        self.launches += 1
        return self.kernel[grid]


@interp
def test_interpreter_really_runs_the_kernels(ts, monkeypatch):
    from triton.runtime.interpreter import InterpretedFunction
    names = ('_fwd_chunk_state', '_carry', '_fwd_chunk_out', '_bwd_chunk_adjoint', '_bwd_chunk_forward',
             '_bwd_chunk_reverse')
    spies = {}
    for name in names:
        assert isinstance(getattr(ts, name), InterpretedFunction), name
        spies[name] = _Spy(getattr(ts, name))
        monkeypatch.setattr(ts, name, spies[name])
    args = [t.requires_grad_() for t in make_inputs(1, 3, 2, 10)]
    ts.triton_selective_scan(*args, tuning=ts.ScanTuning(chunk=4)).sum().backward()
    assert {k: s.launches for k, s in spies.items()} == {
        '_fwd_chunk_state': 1, '_carry': 2, '_fwd_chunk_out': 1, '_bwd_chunk_adjoint': 1, '_bwd_chunk_forward': 1,
        '_bwd_chunk_reverse': 1}  # yapf: disable


# (batch, channels, d_state, length, chunk_size, block_d): one token; 4 chunks, L a multiple of the chunk,
# two channel blocks; L and D not multiples of chunk / block; 4 chunks of 64, the last partial
CASES = [(1, 4, 4, 1, None, None), (2, 16, 8, 64, 16, 8), (2, 5, 4, 7, 4, 4), (1, 4, 8, 200, 64, None)]


@interp
@pytest.mark.parametrize('batch,channels,d_state,length,chunk,block_d', CASES)
def test_forward_and_gradients_match_loop(ts, batch, channels, d_state, length, chunk, block_d):
    args = make_inputs(batch, channels, d_state, length, seed=length + channels)
    grad_out = torch.randn(batch, channels, length, generator=torch.Generator().manual_seed(1))
    ours = [t.clone().requires_grad_() for t in args]
    y = ts.triton_selective_scan(*ours, tuning=ts.ScanTuning(chunk=chunk, block_d=block_d))
    assert y.dtype == torch.float32 and y.shape == (batch, channels, length)
    ref = [t.double().requires_grad_() for t in args]
    expected = loop_scan(*ref)
    assert_close(y.detach(), expected.detach(), 1e-5, 'y')
    y.backward(grad_out)
    expected.backward(grad_out.double())
    for name, a, b in zip(ARG_NAMES, ours, ref):
        assert a.grad.dtype == a.dtype and a.grad.shape == a.shape, name
        assert_close(a.grad, b.grad, 1e-4, f'grad of {name}')


@interp
@pytest.mark.parametrize('red', [1, 2])
def test_tensor_core_channel_reductions(ts, red):
    """N >= 16: dB and dC summed over channels by tl.dot (the interpreter computes it in fp32)."""
    args = make_inputs(1, 8, 16, 24, seed=red)
    tuning = ts.ScanTuning(chunk=8, red=red)
    assert ts.default_config(args[0], 16, tuning).red == red
    ours = [t.clone().requires_grad_() for t in args]
    ts.triton_selective_scan(*ours, tuning=tuning).backward(torch.ones(1, 8, 24))
    ref = [t.double().requires_grad_() for t in args]
    loop_scan(*ref).sum().backward()
    for name, a, b in zip(ARG_NAMES, ours, ref):
        assert_close(a.grad, b.grad, 1e-4, f'grad of {name}')


@interp
def test_polynomial_exp2_rows(ts):
    """npoly: the first state rows take exp2 from the FMA-pipe polynomial (~2e-7 relative, like ex2.approx)."""
    args = make_inputs(1, 4, 8, 40, seed=9)
    tuning = ts.ScanTuning(chunk=8, npoly=(4, 2))
    cfg = ts.default_config(args[0], 8, tuning)
    assert (cfg.npoly, cfg.npoly_out) == (4, 2)
    ours = [t.clone().requires_grad_() for t in args]
    y = ts.triton_selective_scan(*ours, tuning=tuning)
    ref = [t.double().requires_grad_() for t in args]
    expected = loop_scan(*ref)
    assert_close(y.detach(), expected.detach(), 1e-5, 'y')
    y.sum().backward()
    expected.sum().backward()
    for name, a, b in zip(ARG_NAMES, ours, ref):
        assert_close(a.grad, b.grad, 1e-4, f'grad of {name}')


@interp
def test_bf16_inputs(ts):
    args = make_inputs(2, 6, 4, 40, seed=3, dtype=torch.bfloat16)
    ours = [t.clone().requires_grad_() for t in args]
    y = ts.triton_selective_scan(*ours, tuning=ts.ScanTuning(chunk=16))
    assert y.dtype == torch.bfloat16
    ref = [t.detach().double().requires_grad_() for t in args]
    expected = loop_scan(*ref)  # same rounded inputs in float64: only output rounding differs
    assert_close(y.detach(), expected.detach(), 2e-2, 'y')
    y.float().sum().backward()
    expected.sum().backward()
    for name, a, b in zip(ARG_NAMES, ours, ref):
        assert a.grad.dtype == a.dtype, name
        assert_close(a.grad, b.grad, 3e-2, f'grad of {name}')


@interp
@pytest.mark.parametrize('with_D,with_bias,softplus', [(False, False, True), (True, False, False), (False, True, True)])
def test_optional_arguments(ts, with_D, with_bias, softplus):
    u, delta, A, B, C, D, bias = make_inputs(2, 4, 3, 20, seed=7)
    if not softplus:
        delta = delta.abs()  # dt = delta + bias must stay >= 0
    D = D if with_D else None
    bias = bias.abs() if with_bias else None
    ours = [None if t is None else t.clone().requires_grad_() for t in (u, delta, A, B, C, D, bias)]
    y = ts.triton_selective_scan(*ours, delta_softplus=softplus, tuning=ts.ScanTuning(chunk=8))
    ref = [None if t is None else t.double().requires_grad_() for t in (u, delta, A, B, C, D, bias)]
    expected = loop_scan(*ref, delta_softplus=softplus)
    assert_close(y.detach(), expected.detach(), 1e-5, 'y')
    y.sum().backward()
    expected.sum().backward()
    for name, a, b in zip(ARG_NAMES, ours, ref):
        if a is not None:
            assert_close(a.grad, b.grad, 1e-4, f'grad of {name}')


@interp
def test_partial_gradients_and_no_grad(ts):
    args = make_inputs(1, 4, 3, 20, seed=5)
    ours = [t.clone().requires_grad_(i in (2, 4)) for i, t in enumerate(args)]  # A and C only
    ts.triton_selective_scan(*ours, tuning=ts.ScanTuning(chunk=8)).sum().backward()
    ref = [t.double().requires_grad_(i in (2, 4)) for i, t in enumerate(args)]
    loop_scan(*ref).sum().backward()
    for i, (a, b) in enumerate(zip(ours, ref)):
        if i in (2, 4):
            assert_close(a.grad, b.grad, 1e-4, ARG_NAMES[i])
        else:
            assert a.grad is None
    with torch.no_grad():
        y = ts.triton_selective_scan(*[t.requires_grad_() for t in args], tuning=ts.ScanTuning(chunk=8))
    assert not y.requires_grad


@interp
def test_strided_inputs_and_long_memory(ts):
    """Channel-last views (what Cycle-scan could pass) and slow decays carried across many chunks."""
    u, delta, A, B, C, D, bias = make_inputs(1, 4, 4, 96, seed=11)
    A = A / 50  # states remember ~hundreds of tokens: the carry between chunks matters
    u_cl = u.transpose(1, 2).contiguous().transpose(1, 2)
    B_cl = B.transpose(1, 2).contiguous().transpose(1, 2)
    A_t = A.t().contiguous().t()
    y = ts.triton_selective_scan(u_cl, delta, A_t, B_cl, C, D, bias, tuning=ts.ScanTuning(chunk=8))
    assert_close(y, loop_scan(u, delta, A, B, C, D, bias), 1e-5, 'y')


def loop_cycle(u, delta, A, B, C, D, delta_bias, gamma, delta_softplus=True):
    """The definition of Cycle-scan's scan: the float64 loop over R copies, copy r weighted by gamma[:, r]."""
    copies, length = gamma.shape[1], u.shape[2]
    y = loop_scan(*[t.repeat(1, 1, copies) if t.dim() == 3 else t for t in (u, delta, A, B, C)], D, delta_bias,
                  delta_softplus)
    return (y.view(u.shape[0], u.shape[1], copies, length) * gamma.double()[None, :, :, None]).sum(2)


# (batch, channels, d_state, length of one copy, chunk, copies): 3 copies, L not a multiple of the chunk,
# two samples; 2 copies; one copy (G = 0); N = 16 (tensor-core reductions), 5 chunks
CYCLE_CASES = [(2, 5, 4, 13, 4, 3), (1, 4, 8, 24, 8, 2), (1, 3, 4, 10, 4, 1), (1, 8, 16, 40, 8, 3)]


@interp
@pytest.mark.parametrize('batch,channels,d_state,length,chunk,copies', CYCLE_CASES)
def test_cycle_scan_matches_loop_over_copies(tc, batch, channels, d_state, length, chunk, copies):
    """The periodic op equals the loop over the repeated sequence: output and all gradients, gamma's included."""
    args = make_inputs(batch, channels, d_state, length, seed=length + copies)
    args[2] = args[2] / 4  # slower decays: the state carried over copy boundaries matters
    gamma = 1 + 0.5 * torch.randn(channels, copies, generator=torch.Generator().manual_seed(copies))
    ours = [t.clone().requires_grad_() for t in args + [gamma]]
    y = tc.triton_cycle_selective_scan(*ours, tuning=tc.ScanTuning(chunk=chunk))
    assert y.shape == (batch, channels, length) and y.dtype == torch.float32
    ref = [t.double().requires_grad_() for t in args + [gamma]]
    expected = loop_cycle(*ref)
    assert_close(y.detach(), expected.detach(), 1e-5, 'y')
    grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(8))
    y.backward(grad_out)
    expected.backward(grad_out.double())
    for name, a, b in zip(ARG_NAMES + ('gamma', ), ours, ref):
        assert a.grad.dtype == a.dtype and a.grad.shape == a.shape, name
        assert_close(a.grad, b.grad, 1e-4, f'grad of {name}')


@interp
@pytest.mark.parametrize('case', ['optional_inputs_off', 'partial_grads', 'gamma_zeros', 'strided_gamma_many_chunks'])
def test_cycle_scan_edge_cases(tc, case):
    """No D / bias / softplus; gradients for some inputs only; gamma with zero columns and rows summing to
    zero (Gamma = 0); a non-contiguous gamma with N = 3 (padded to 4), two channel blocks, several carry
    programs and more than 16 chunks (the carry kernels loop over chunk blocks)."""
    batch, channels, d_state, length, chunk = (2, 5, 4, 13, 4) if case != 'strided_gamma_many_chunks' else (1, 40, 3, 70, 4)
    u, delta, A, B, C, D, bias = make_inputs(batch, channels, d_state, length, seed=21)
    A = A / 4
    gamma = 1 + 0.5 * torch.randn(channels, 3, generator=torch.Generator().manual_seed(5))
    softplus = True
    if case == 'optional_inputs_off':
        D = bias = None
        softplus = False
        delta = delta.abs()  # dt = delta must stay >= 0 without softplus
    elif case == 'gamma_zeros':
        gamma[:, 0] = 0
        gamma[:2] = torch.tensor([[0.0, 1.0, -1.0], [0.0, 0.0, 0.0]])
    elif case == 'strided_gamma_many_chunks':
        gamma = gamma.t().contiguous().t()  # strides (1, channels)
    wants = [True] * 8 if case != 'partial_grads' else [False, True, False, True, False, False, True, True]
    args = (u, delta, A, B, C, D, bias, gamma)
    ours = [None if t is None else t.clone().requires_grad_(w) for t, w in zip(args, wants)]
    tuning = tc.ScanTuning(chunk=chunk)
    y = tc.triton_cycle_selective_scan(*ours, delta_softplus=softplus, tuning=tuning)
    ref = [None if t is None else t.double().requires_grad_(w) for t, w in zip(args, wants)]
    expected = loop_cycle(*ref, delta_softplus=softplus)
    assert_close(y.detach(), expected.detach(), 1e-5, 'y')
    grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(3))
    y.backward(grad_out)
    expected.backward(grad_out.double())
    for name, a, b in zip(ARG_NAMES + ('gamma', ), ours, ref):
        if a is None:
            continue
        if a.requires_grad:
            assert_close(a.grad, b.grad, 1e-4, f'grad of {name}')
        else:
            assert a.grad is None, name
    with torch.no_grad():  # the forward-only path
        assert_close(tc.triton_cycle_selective_scan(*ours, delta_softplus=softplus, tuning=tuning),
                     expected.detach(), 1e-5, 'y without grad')


@interp
def test_cycle_scan_rejects_bad_gamma(tc):
    args = make_inputs(1, 5, 4, 8)
    for bad in (torch.ones(3, 3), torch.ones(5), torch.ones(5, 0)):
        with pytest.raises(ValueError, match='gamma must be'):
            tc.triton_cycle_selective_scan(*args, bad)


@interp
def test_cycle_scan_launches(ts, tc, monkeypatch):
    """The periodic op's kernels, each interpreted: one states pass, one carry kernel, one output pass forward;
    the weighted scan's four backward kernels, G's backward, and the copy's final-state walk."""
    from triton.runtime.interpreter import InterpretedFunction
    names = ('_fwd_chunk_state', '_carry', '_cycle_carry', '_fwd_chunk_out', '_bwd_chunk_adjoint',
             '_bwd_chunk_forward', '_bwd_chunk_reverse', '_cycle_carry_bwd', '_bwd_chunk_final_state')
    spies = {}
    for name in names:
        mod = tc if name.startswith('_cycle') else ts
        assert isinstance(getattr(mod, name), InterpretedFunction), name
        spies[name] = _Spy(getattr(mod, name))
        monkeypatch.setattr(mod, name, spies[name])
    args = [t.requires_grad_() for t in make_inputs(1, 3, 2, 10) + [torch.ones(3, 3)]]
    tc.triton_cycle_selective_scan(*args, tuning=tc.ScanTuning(chunk=4)).sum().backward()
    assert {k: s.launches for k, s in spies.items()} == {
        '_fwd_chunk_state': 1, '_carry': 1, '_cycle_carry': 1, '_fwd_chunk_out': 1, '_bwd_chunk_adjoint': 1,
        '_bwd_chunk_forward': 1, '_bwd_chunk_reverse': 1, '_cycle_carry_bwd': 1,
        '_bwd_chunk_final_state': 1}  # yapf: disable


@interp
def test_cycle_scan_bf16_and_switch(ts):
    """bf16 inputs with fp32 gamma; ``cycle_selective_scan(backend='triton')`` takes the periodic op, others repeat."""
    from mmhrsam.ops.selective_scan import cycle_selective_scan
    args = make_inputs(1, 4, 16, 32, seed=4, dtype=torch.bfloat16)  # N = 16: tf32 channel reductions
    gamma = torch.tensor([[1.0, 0.5, -0.25]]).repeat(4, 1)
    ours = [t.clone().requires_grad_() for t in args + [gamma]]
    y = cycle_selective_scan(*ours, backend='triton')
    assert y.dtype == torch.bfloat16
    ref = [t.detach().double().requires_grad_() for t in args + [gamma]]
    expected = loop_cycle(*ref)
    assert_close(y.detach(), expected.detach(), 2e-2, 'y')
    grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    y.float().backward(grad_out)
    expected.backward(grad_out.double())
    for name, a, b in zip(ARG_NAMES + ('gamma', ), ours, ref):
        assert a.grad.dtype == a.dtype, name
        assert_close(a.grad, b.grad, 3e-2, f'grad of {name}')
    with torch.no_grad():
        y_chunked = cycle_selective_scan(*[t.detach().float() for t in args], gamma, backend='chunked')
    assert_close(y_chunked, expected.detach(), 1e-5, 'chunked (repeat) path')


@interp
def test_switch_uses_triton_only_when_asked_on_cpu(ts):
    from mmhrsam.ops import BackendUnavailableError
    from mmhrsam.ops.selective_scan import AUTO_ORDER, SCAN_BACKENDS, resolve_scan_backend, selective_scan
    assert AUTO_ORDER[0] == 'triton' and 'triton' in SCAN_BACKENDS
    args = make_inputs(1, 3, 2, 9, seed=2)
    assert resolve_scan_backend('auto', args[0]) == 'chunked'  # the interpreter is a test tool
    assert 'CUDA' in SCAN_BACKENDS['triton'].unavailable(args[0])
    y = selective_scan(*args, backend='triton')  # named explicitly: runs here through the interpreter
    assert_close(y, loop_scan(*args), 1e-5, 'y')
    assert ts.triton_unavailable(args[0]) is None
    assert issubclass(BackendUnavailableError, RuntimeError)


@not_interp
def test_not_interpreted_cpu_is_a_clear_error():
    """Without the interpreter, CPU tensors get BackendUnavailableError with the reason."""
    code = ('import os, torch; os.environ.pop("TRITON_INTERPRET", None)\n'
            'from mmhrsam.ops import BackendUnavailableError\n'
            'from mmhrsam.ops.selective_scan import selective_scan\n'
            'x = torch.zeros(1, 2, 3); A = -torch.ones(2, 2); B = torch.zeros(1, 2, 3)\n'
            'try:\n    selective_scan(x, x, A, B, B, backend="triton")\n'
            'except BackendUnavailableError as e:\n    print("OK", e)\n')
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.startswith('OK') and 'CUDA' in out.stdout, out.stdout + out.stderr


@not_interp
def test_import_without_triton():
    """A missing triton: `import mmhrsam` works and the backend says why it is unavailable."""
    code = ('import sys; sys.modules["triton"] = None\n'
            'import torch, mmhrsam\n'
            'from mmhrsam.ops.selective_scan import triton_scan, selective_scan\n'
            'x = torch.zeros(1, 2, 3)\n'
            'assert triton_scan.triton is None\n'
            'print("REASON", triton_scan.triton_unavailable(x))\n'
            'print("AUTO", selective_scan(x, x, -torch.ones(2, 2), x[:, :2], x[:, :2]).shape)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'REASON' in out.stdout and 'pip install triton' in out.stdout, out.stdout
    assert 'AUTO torch.Size([1, 2, 3])' in out.stdout


@not_interp
def test_scan_tuning_defaults_and_validation(monkeypatch):
    """ScanTuning: without overrides the heuristics (values worked out by hand, CPU counts 4 SMs), explicit
    fields as given, no environment variable read, bad fields and impossible reductions rejected."""
    ts = importlib.import_module(MODULE)
    for var, value in (('MMHRSAM_SCAN_CHUNK', '8'), ('MMHRSAM_SCAN_WARPS', '4'), ('MMHRSAM_SCAN_NPOLY', '4,2'),
                       ('MMHRSAM_SCAN_RED', '0')):
        monkeypatch.setenv(var, value)  # read by earlier versions; must change nothing now
    u32 = torch.zeros(1, 64, 100)
    # 100 tokens x 2 channel blocks / (32 x 4) programs wanted ~ 2 -> at least 64; N = 16: split-tf32 for fp32
    assert ts.default_config(u32, 16) == ts.ScanConfig(chunk=64, tile=4, bwd_tile=4, fwd_warps=1, bwd_warps=1,
                                                       npoly=0, npoly_out=0, fwd_block_d=32, bwd_block_d=32, red=2)
    u16 = torch.zeros(1, 1, 1, dtype=torch.bfloat16).expand(2, 768, 16384)
    # 16384 x 2 x 24 / 128 = 6144 -> 2^13, capped at 512; 8 bf16 tokens per tile; tf32 reductions
    assert ts.default_config(u16, 32) == ts.ScanConfig(512, 8, 4, 1, 1, 0, 0, 32, 32, 1)
    assert ts.default_config(u32, 8).red == 0  # N < 16: no tl.dot
    tuned = ts.default_config(u32, 16, ts.ScanTuning(chunk=10, fwd_warps=2, npoly=[4, 40], red=1))
    assert (tuned.chunk, tuned.fwd_block_d, tuned.npoly, tuned.npoly_out, tuned.red) == (12, 64, 4, 16, 1)
    assert ts.ScanTuning(npoly=[1, 2]).npoly == (1, 2)
    for bad in (dict(chunk=0), dict(fwd_warps=3), dict(npoly=(1, )), dict(npoly=(-1, 0)), dict(red=3),
                dict(block_d=24)):
        with pytest.raises(ValueError, match='ScanTuning'):
            ts.ScanTuning(**bad)
    with pytest.raises(ValueError, match='red=2 needs N >= 16'):
        ts.default_config(u32, 8, ts.ScanTuning(red=2))
    with pytest.raises(TypeError, match='ScanTuning'):
        ts.triton_selective_scan(u32, u32, -torch.ones(64, 4), u32[:, :4], u32[:, :4], tuning=dict(chunk=8))


@not_interp
def test_kernels_build_for_sm90_without_a_gpu():
    """Triton's frontend on every kernel and constexpr variant the wrapper launches (no device needed)."""
    triton = pytest.importorskip('triton')
    try:
        from triton._C.libtriton import ir
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource, make_backend
        target = GPUTarget('cuda', 90, 32)
        backend = make_backend(target)
    except Exception as e:  # noqa: BLE001  internal API of another triton version
        pytest.skip(f'cannot build IR with this triton ({triton.__version__}): {e}')
    mod = importlib.import_module(MODULE)
    if mod.triton is None or mod.INTERPRETED:
        pytest.skip('kernels not compiled for a GPU in this process')
    OPTIONAL_POINTERS = {'HAS_BIAS': 'delta_bias_ptr', 'HAS_D': 'D_skip_ptr', 'HAS_USCALE': 'u_scale_ptr'}

    def build(fn, consts, num_warps, dtype='fp32'):
        # an absent optional input is launched as a None pointer (a constexpr): build it that way
        consts = dict(consts, **{ptr: None for flag, ptr in OPTIONAL_POINTERS.items()
                                 if consts.get(flag) is False and ptr in fn.arg_names})
        sig = {a: 'constexpr' if a in consts else ('*' + dtype if a.endswith('_ptr') else 'i32') for a in fn.arg_names}
        options = backend.parse_options(dict(num_warps=num_warps))
        context = ir.context()
        ir.load_dialects(context)
        backend.load_dialects(context)
        src = ASTSource(fn=fn, signature=sig, constexprs=consts)
        return src.make_ir(target, options, backend.get_codegen_implementation(options), backend.get_module_map(),
                           context)

    for dtype, tile, npoly, red, N in (('fp32', 4, 0, 2, 32), ('bf16', 8, 4, 1, 32), ('fp32', 4, 2, 0, 5)):
        NP = 1 << (N - 1).bit_length()
        base = dict(N=N, NP=NP, TT=tile, HAS_BIAS=True, SOFTPLUS=True)
        build(mod._fwd_chunk_state, dict(base, BLOCK_D=64, NPOLY=npoly), 2, dtype)
        for uscale in (False, True):  # without uscale: no D and no bias either
            build(mod._fwd_chunk_out, dict(base, BLOCK_D=64, NPOLY=npoly, HAS_BIAS=uscale, HAS_D=uscale,
                                           HAS_USCALE=uscale), 2, dtype)
        bwd = dict(base, TT=4, BLOCK_D=32)
        build(mod._bwd_chunk_adjoint, dict(bwd, NPOLY=npoly), 1, dtype)
        for uscale in (False, True):  # the plain scan, Cycle-scan's weighted scan
            build(mod._bwd_chunk_forward, dict(bwd, RED=red, HAS_USCALE=uscale), 1, dtype)
        build(mod._bwd_chunk_reverse, dict(bwd, HAS_BIAS=False, HAS_D=False, SOFTPLUS=False, RED=red,
                                           HAS_USCALE=False), 1, dtype)
        build(mod._bwd_chunk_reverse, dict(bwd, HAS_D=True, RED=red, HAS_USCALE=True), 1, dtype)
        build(mod._bwd_chunk_final_state, dict(bwd, RED=red), 1, dtype)  # Cycle-scan's copy
    for reverse in (False, True):
        build(mod._carry, dict(REVERSE=reverse, CB=16, BLK=256), 4)
    cycle = importlib.import_module(CYCLE_MODULE)
    build(cycle._cycle_carry, dict(CB=16, BLK=256), 4)
    build(cycle._cycle_carry_bwd, dict(CB=16, BLK=256), 4)


def compare_on_cuda(fns, args, names, dtype):
    """Output and input gradients of each fn in ``fns`` on the same CUDA inputs and output gradient agree."""
    from mmhrsam.ops.selective_scan import triton_scan
    if triton_scan.INTERPRETED:
        pytest.skip('kernels were defined for the interpreter')
    grad_out = torch.randn(args[0].shape, device='cuda', generator=torch.Generator('cuda').manual_seed(0))
    results = []
    for fn in fns:
        leaves = [t.clone().requires_grad_() for t in args]
        y = fn(*leaves)
        y.backward(grad_out.to(y.dtype))
        results.append([y.detach()] + [t.grad for t in leaves])
    rel = 1e-4 if dtype == torch.float32 else 3e-2
    for name, a, b in zip(('y', ) + names, *results):
        assert_close(a.float(), b.float(), rel, name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_cuda_matches_chunked(dtype):
    from mmhrsam.ops.selective_scan import chunked_selective_scan, resolve_scan_backend, selective_scan
    args = [t.cuda() for t in make_inputs(2, 96, 32, 3000, seed=1, dtype=dtype)]
    assert resolve_scan_backend('auto', args[0]) == 'triton'
    compare_on_cuda((lambda *a: selective_scan(*a, backend='triton'), chunked_selective_scan), args, ARG_NAMES, dtype)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_cuda_cycle_scan_matches_repeat(dtype):
    from mmhrsam.ops.selective_scan import cycle_selective_scan, repeat_cycle_selective_scan
    args = [t.cuda() for t in make_inputs(2, 96, 32, 1500, seed=6, dtype=dtype)]
    args.append(1 + 0.3 * torch.randn(96, 3, device='cuda'))
    compare_on_cuda((lambda *a: cycle_selective_scan(*a, backend='triton'),
                     lambda *a: repeat_cycle_selective_scan(*a, backend='chunked')), args, ARG_NAMES + ('gamma', ),
                    dtype)
