"""CycleScan / MultiScaleCycleScan against a float64 re-implementation written from the paper."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from mmhrsam.models.layers import CycleScan, MultiScaleCycleScan
from mmhrsam.registry import MODELS

C_SMALL, N_SMALL = 16, 4


def sequential_ssm(u, dt, A, B, C, D):
    """u, dt: (L, Ch); A: (Ch, N); B, C: (L, N); D: (Ch,) -> (L, Ch), one sample, float64."""
    h = torch.zeros(A.shape, dtype=torch.float64)
    ys = []
    for t in range(u.shape[0]):
        h = torch.exp(dt[t][:, None] * A) * h + (dt[t] * u[t])[:, None] * B[t][None, :]
        ys.append(h @ C[t] + D * u[t])
    return torch.stack(ys)


def manual_cycle_scan(module, x):
    """docs/architecture.md Cycle-scan spelled out in float64 from the module's weights. x: (batch, L, C)."""
    p = {k: v.detach().double() for k, v in module.state_dict().items()}
    x = x.double()
    ch, n, repeats, length = module.embed_dim, module.d_state, module.num_repeats, x.shape[1]
    h = F.layer_norm(x, (ch, ), p['in_norm.weight'], p['in_norm.bias'])
    xz = F.silu(F.linear(h, p['in_proj.0.weight'], p['in_proj.0.bias']))
    xs, z = xz[..., :ch], xz[..., ch:]
    outs = []
    for b in range(x.shape[0]):
        seq = torch.cat([xs[b]] * repeats, dim=0)  # (R*L, C): the sequence repeated end to end
        dbc = F.linear(seq, p['ssm_proj.weight'], p['ssm_proj.bias'])
        dt = F.softplus(dbc[:, :ch] + p['ssm_proj_bias'])
        y = sequential_ssm(seq, dt, -torch.exp(p['As_log']), dbc[:, ch:ch + n], dbc[:, ch + n:], p['Ds'])
        merged = sum(p['gamma'][:, r, 0] * y[r * length:(r + 1) * length] for r in range(repeats))
        y = F.layer_norm(merged, (ch, ), p['out_norm.weight'], p['out_norm.bias'])
        outs.append(x[b] + F.linear(z[b] * y, p['out_proj.weight'], p['out_proj.bias']))
    return torch.stack(outs)


def randomized(cls=CycleScan, seed=0, **kwargs):
    """A small module whose every parameter is moved off its init, so indexing mistakes show."""
    torch.manual_seed(seed)
    module = cls(embed_dim=C_SMALL, d_state=N_SMALL, **kwargs)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name in ('As_log', 'gamma', 'Ds') or name.endswith('norm.weight') or name.endswith('norm.bias'):
                p.add_(0.3 * torch.randn_like(p))
    return module


def test_parameter_count_and_checkpoint_names():
    module = CycleScan()
    # in_norm 2*768 + in_proj 768*1536+1536 + ssm_proj 768*832+832 + ssm_proj_bias 768 + As_log 768*32
    # + Ds 768 + gamma 768*3 + out_norm 2*768 + out_proj 768*768+768
    assert sum(p.numel() for p in module.parameters()) == 2_443_072
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes == {
        'in_norm.weight': (768, ), 'in_norm.bias': (768, ),
        'in_proj.0.weight': (1536, 768), 'in_proj.0.bias': (1536, ),
        'ssm_proj.weight': (832, 768), 'ssm_proj.bias': (832, ), 'ssm_proj_bias': (768, ),
        'As_log': (768, 32), 'Ds': (768, ), 'gamma': (768, 3, 1),
        'out_norm.weight': (768, ), 'out_norm.bias': (768, ),
        'out_proj.weight': (768, 768), 'out_proj.bias': (768, ),
    }  # yapf: disable
    assert sum(p.numel() for p in MultiScaleCycleScan().parameters()) == 2_443_072


def test_initialization():
    module = CycleScan(embed_dim=64, d_state=8, dt_min=0.001, dt_max=0.1)
    torch.testing.assert_close(module.As_log.data, torch.log(torch.arange(1., 9.)).expand(64, 8))
    assert torch.equal(module.Ds.data, torch.ones(64)) and torch.equal(module.gamma.data, torch.ones(64, 3, 1))
    dt = F.softplus(module.ssm_proj_bias.data)
    assert dt.min() >= 0.001 * (1 - 1e-4) and dt.max() <= 0.1 * (1 + 1e-4)
    assert math.log(dt.max() / dt.min()) > 1  # log-uniform, not constant
    assert all(getattr(p, '_no_weight_decay', False) for p in (module.As_log, module.Ds, module.gamma))


def test_registry_build():
    module = MODELS.build(dict(type='CycleScan', embed_dim=C_SMALL, d_state=N_SMALL, scan_backend='chunked'))
    assert isinstance(module, CycleScan) and module.scan_backend == 'chunked'
    assert isinstance(MODELS.build(dict(type='MultiScaleCycleScan', embed_dim=8, d_state=2)), MultiScaleCycleScan)


@pytest.mark.parametrize('backend', ['chunked', 'reference', 'auto'])
def test_matches_float64_reimplementation(backend):
    module = randomized(scan_backend=backend)
    x = torch.randn(2, 5 * 6, C_SMALL)
    with torch.no_grad():
        out = module(x)
    torch.testing.assert_close(out.double(), manual_cycle_scan(module, x), rtol=1e-4, atol=1e-4)


def test_token_map_input_keeps_shape():
    module = randomized()
    x = torch.randn(2, 5, 6, C_SMALL)
    with torch.no_grad():
        out = module(x)
        flat = module(x.flatten(1, 2))
    assert out.shape == x.shape
    torch.testing.assert_close(out.flatten(1, 2), flat)


def test_batch_equals_per_sample():
    module = randomized(seed=1)
    x = torch.randn(3, 7, 5, C_SMALL)
    with torch.no_grad():
        batched = module(x)
        single = torch.cat([module(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_close_to_fp32():
    module = randomized(seed=2)
    x = torch.randn(2, 6, 6, C_SMALL)
    with torch.no_grad():
        ref = module(x) - x
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = module(x)
    assert torch.isfinite(out).all()
    branch = out.float() - x
    assert (branch - ref).norm() / ref.norm() < 5e-2
    with torch.autocast('cpu', dtype=torch.bfloat16):  # training step under autocast
        module(x.requires_grad_()).float().square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters()) and torch.isfinite(x.grad).all()


def test_gradients_chunked_match_reference_backend():
    grads = {}
    x0 = torch.randn(2, 20, C_SMALL)
    for backend in ('chunked', 'reference'):
        module = randomized(seed=3, scan_backend=backend)
        x = x0.clone().requires_grad_()
        (module(x)**2).sum().backward()
        grads[backend] = {'x': x.grad, **{k: p.grad for k, p in module.named_parameters()}}
    assert set(grads['chunked']) == set(grads['reference'])
    for name, g in grads['chunked'].items():
        assert g is not None and torch.isfinite(g).all(), name
        torch.testing.assert_close(g, grads['reference'][name], rtol=1e-3, atol=1e-4, msg=name)


def test_multi_scale_equals_cycle_scan_on_concatenation():
    single = randomized(seed=4)
    multi = MultiScaleCycleScan(embed_dim=C_SMALL, d_state=N_SMALL)
    multi.load_state_dict(single.state_dict())
    main, anchor = torch.randn(2, 6, 4, C_SMALL), torch.randn(2, 3, 3, C_SMALL)
    grids = ((6, 4), (3, 3))

    def tokens(a, b):
        return torch.cat([a.flatten(1, 2), b.flatten(1, 2)], dim=1)

    with torch.no_grad():
        out = multi(tokens(main, anchor), grids)
        joint = single(tokens(main, anchor))  # no grids: one sequence
        each = single(tokens(main, anchor), grids)  # a plain Cycle-scan scans each grid alone
    torch.testing.assert_close(out, joint)
    torch.testing.assert_close(each[:, :24], single(main).flatten(1, 2))
    torch.testing.assert_close(each[:, 24:], single(anchor).flatten(1, 2))
    # the scales are fused: the main map's output depends on the anchor map
    with torch.no_grad():
        changed = multi(tokens(main, torch.randn_like(anchor)), grids)
    assert not torch.allclose(changed[:, :24], out[:, :24])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_triton_module_matches_float64_and_chunked_gradients():
    """The module on the GPU with the periodic Triton op: output vs the float64 spelling-out of the paper's definition,
    and every parameter's gradient vs the chunked backend (which scans the repeated sequence)."""
    from mmhrsam.ops.selective_scan import triton_scan
    if triton_scan.triton is None or triton_scan.INTERPRETED:
        pytest.skip('triton unavailable')
    torch.manual_seed(0)
    x = torch.randn(2, 300, 64, device='cuda')
    grads = {}
    for backend in ('triton', 'chunked'):
        torch.manual_seed(1)
        module = CycleScan(embed_dim=64, d_state=16, scan_backend=backend).cuda()
        with torch.no_grad():
            module.gamma.copy_(1 + 0.3 * torch.randn_like(module.gamma))
        out = module(x)
        if backend == 'triton':
            expected = manual_cycle_scan(copy.deepcopy(module).cpu(), x.cpu())
            assert (out.double().cpu() - expected).abs().max().item() < 1e-4
        out.square().sum().backward()
        grads[backend] = {k: p.grad.clone() for k, p in module.named_parameters()}
    for name, g in grads['triton'].items():
        ref = grads['chunked'][name]
        assert (g - ref).abs().max().item() <= 1e-3 * max(ref.abs().max().item(), 1e-3), name
