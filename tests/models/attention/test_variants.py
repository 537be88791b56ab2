"""Attention variants against references written here from their definitions: dense
attention with a mask computed from token coordinates, and a per-window loop for
KV-only padding."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmhrsam.models.attention import FlexibleLocalAttention
from mmhrsam.models.layers import AxialRoPE
from mmhrsam.ops import BackendUnavailableError, set_backends
from mmhrsam.ops.attention import available_backends
from mmhrsam.registry import MODELS

C, HEADS = 32, 4
BACKENDS = available_backends('cpu')


def build(type_, **kw):
    return MODELS.build(dict(type=type_, embed_dim=C, num_heads=HEADS, **kw))


def split_heads(t):  # (B, L, C) -> (B, heads, L, d)
    return t.unflatten(-1, (HEADS, -1)).transpose(1, 2)


def project_qkv(module, x):
    q, k, v = F.linear(x, module.qkv.weight, module.qkv.bias).chunk(3, -1)
    return q, k, v


def rotate(rope, t, pos):  # t (B, heads, L, d)
    return rope(t.transpose(1, 2), pos).transpose(1, 2) if rope is not None else t


def dense_masked_reference(module, x, group, pos=None, rope=None):
    """softmax(q k^T / sqrt(d) + mask) v with mask[i, j] = (group[i] != group[j]) * -inf."""
    B, H, W, _ = x.shape
    t = x.reshape(B, H * W, C).double()
    m = module.double()
    q, k, v = (split_heads(a) for a in project_qkv(m, t))
    q, k = rotate(rope, q, pos), rotate(rope, k, pos)
    scores = q @ k.transpose(-1, -2) / math.sqrt(C // HEADS)
    scores = scores.masked_fill(group[:, None] != group[None, :], float('-inf'))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, H * W, C)
    out = F.linear(out, m.proj.weight, m.proj.bias)
    module.float()
    return out.reshape(B, H, W, C).float()


def window_ids(h, w, k, s):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    return (((ys + s) // k) * 1000 + (xs + s) // k).reshape(-1)


def padded_pos(h, w, s):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    return torch.stack([ys + s, xs + s], -1).reshape(-1, 2).float()


GRIDS = [(8, 8), (10, 13), (5, 21), (3, 3), (16, 12)]
# k divides 2s here, where Flash and Plain Swin coincide; other shifts: test_swin_shift.py
WINDOWS = [(4, 0), (4, 2), (8, 4)]


# ----------------------------------------------------------------------------- Flash == Plain
@pytest.mark.parametrize('h,w', GRIDS)
@pytest.mark.parametrize('k,s', WINDOWS)
@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('batch', [1, 4])
def test_flash_swin_equals_plain_swin(h, w, k, s, backend, batch):
    torch.manual_seed(h * w + k + batch)
    plain = build('PlainSwinAttention', window_size=k, shift_size=s)
    flash = build('FlashSwinAttention', window_size=k, shift_size=s, backend=backend)
    flash.load_state_dict(plain.state_dict())
    x = torch.randn(batch, h, w, C)
    rope = AxialRoPE(C // HEADS)
    with torch.no_grad():  # flex has no CPU backward
        torch.testing.assert_close(flash(x), plain(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(flash(x, rope=rope), plain(x, rope=rope), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('h,w', GRIDS)
@pytest.mark.parametrize('k,s', WINDOWS)
@pytest.mark.parametrize('type_', ['FlashSwinAttention', 'PlainSwinAttention'])
def test_window_attention_equals_dense_masked_reference(h, w, k, s, type_):
    torch.manual_seed(0)
    attn = build(type_, window_size=k, shift_size=s)
    x = torch.randn(2, h, w, C)
    rope = AxialRoPE(C // HEADS)
    ref = dense_masked_reference(attn, x, window_ids(h, w, k, s), padded_pos(h, w, s), rope)
    torch.testing.assert_close(attn(x, rope=rope), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('h,w,d', [(8, 8, 2), (9, 7, 3), (6, 10, 1)])
@pytest.mark.parametrize('backend', BACKENDS)
def test_dilated_attention_equals_dense_masked_reference(h, w, d, backend):
    torch.manual_seed(1)
    attn = build('DilatedAttention', dilation=d, backend=backend)
    x = torch.randn(2, h, w, C)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    group = ((ys % d) * d + xs % d).reshape(-1)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), dense_masked_reference(attn, x, group), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('backend', BACKENDS)
def test_global_attention_equals_dense_reference(backend):
    attn = build('GlobalAttention', backend=backend)
    x = torch.randn(3, 6, 7, C)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), dense_masked_reference(attn, x, torch.zeros(42)),
                                   rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- KV padding
def kv_pad_loop_reference(module, x, k, s, rope):
    """Per-window loop: each window's k*k key slots hold its real tokens, the pad token
    elsewhere; keys are rotated by their slot's padded-grid position."""
    B, H, W, _ = x.shape
    m = module.double()
    xd = x.double()
    pad_q, pad_k, pad_v = project_qkv(m, m.padding)
    out = torch.zeros(B, H, W, C, dtype=torch.float64)
    n_wy, n_wx = math.ceil((H + s) / k), math.ceil((W + s) / k)
    for b in range(B):
        for wy in range(n_wy):
            for wx in range(n_wx):
                slots = [(wy * k + i - s, wx * k + j - s) for i in range(k) for j in range(k)]
                real = [(y, x_) for y, x_ in slots if 0 <= y < H and 0 <= x_ < W]
                if not real:
                    continue
                keys, vals = [], []
                for y, x_ in slots:
                    if (y, x_) in real:
                        _, kk, vv = project_qkv(m, xd[b, y, x_][None])
                    else:
                        kk, vv = pad_k, pad_v
                    keys.append(kk[0])
                    vals.append(vv[0])
                kpos = torch.tensor([[y + s, x_ + s] for y, x_ in slots]).float()
                qpos = torch.tensor([[y + s, x_ + s] for y, x_ in real]).float()
                q = project_qkv(m, torch.stack([xd[b, y, x_] for y, x_ in real]))[0]
                q = rope(q.view(1, len(real), HEADS, -1), qpos)[0]             # (n, heads, d)
                kt = rope(torch.stack(keys).view(1, k * k, HEADS, -1), kpos)[0]  # (k*k, heads, d)
                vt = torch.stack(vals).view(k * k, HEADS, -1)
                att = torch.einsum('qhd,khd->hqk', q, kt) / math.sqrt(C // HEADS)
                o = torch.einsum('hqk,khd->qhd', att.softmax(-1), vt).reshape(len(real), C)
                o = F.linear(o, m.proj.weight, m.proj.bias)
                for (y, x_), row in zip(real, o):
                    out[b, y, x_] = row
    module.float()
    return out.float()


@pytest.mark.parametrize('h,w,k,s', [(8, 8, 4, 2), (6, 9, 4, 2), (5, 5, 4, 0), (4, 7, 8, 4),
                                     (5, 7, 3, 1), (6, 6, 3, 1), (7, 4, 5, 3)])  # odd windows/shifts
@pytest.mark.parametrize('backend', BACKENDS)
def test_kv_pad_swin_equals_per_window_loop(h, w, k, s, backend):
    torch.manual_seed(2)
    attn = build('KVPadSwinAttention', window_size=k, shift_size=s, backend=backend)
    x = torch.randn(2, h, w, C)
    rope = AxialRoPE(C // HEADS)
    with torch.no_grad():
        ref = kv_pad_loop_reference(attn, x, k, s, rope)
        torch.testing.assert_close(attn(x, rope=rope), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('backend', BACKENDS)
def test_kv_pad_slot_layout_equals_per_window_loop(backend):
    """On large grids every slot queries too (one dense batch); the result must not change."""
    torch.manual_seed(7)
    attn = build('KVPadSwinAttention', window_size=4, shift_size=2, backend=backend)
    x = torch.randn(2, 18, 20, C)  # 5x6 windows of 16 slots for 360 tokens: 1/3 extra
    assert attn.partition(((18, 20), ), 'cpu').slot_overhead <= attn.slot_layout_max_overhead
    rope = AxialRoPE(C // HEADS)
    with torch.no_grad():
        ref = kv_pad_loop_reference(attn, x, 4, 2, rope)
        torch.testing.assert_close(attn(x, rope=rope), ref, rtol=1e-5, atol=1e-5)
        attn.slot_layout_max_overhead = 0.0  # force the per-group layout
        torch.testing.assert_close(attn(x, rope=rope), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('h,w', [(8, 8), (18, 20)])  # per-group and all-slot layouts
def test_kv_pad_token_gets_gradient_through_keys_and_values(h, w):
    attn = build('KVPadSwinAttention', window_size=4, shift_size=2)
    x = torch.randn(2, h, w, C, requires_grad=True)
    attn(x).square().sum().backward()
    assert attn.padding.grad is not None and attn.padding.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


def test_kv_pad_differs_from_flash_swin_only_at_padded_windows():
    torch.manual_seed(3)
    kvpad = build('KVPadSwinAttention', window_size=4, shift_size=2)
    flash = build('FlashSwinAttention', window_size=4, shift_size=2)
    flash.load_state_dict(kvpad.state_dict(), strict=False)
    x = torch.randn(1, 8, 8, C)
    diff = (kvpad(x) - flash(x)).abs().amax(-1)[0] > 1e-6
    interior = torch.zeros(8, 8, dtype=torch.bool)
    interior[2:6, 2:6] = True  # the one full 4x4 window of the shifted grid
    assert not diff[interior].any() and diff[~interior].all()


# ----------------------------------------------------------------------------- batching
VARIANTS = [
    ('GlobalAttention', {}),
    ('PlainSwinAttention', dict(window_size=4, shift_size=2)),
    ('FlashSwinAttention', dict(window_size=4, shift_size=2)),
    ('FlashSwinAttention', dict(window_size=4, shift_size=0)),
    ('KVPadSwinAttention', dict(window_size=4, shift_size=2)),
    ('DilatedAttention', dict(dilation=2)),
]


@pytest.mark.parametrize('type_,kw', VARIANTS)
@pytest.mark.parametrize('backend', BACKENDS)
def test_batched_equals_per_sample(type_, kw, backend):
    if type_ == 'PlainSwinAttention' and backend == 'flex':
        pytest.skip('Plain Swin is a dense masked baseline')
    torch.manual_seed(4)
    attn = build(type_, backend=backend, **kw)
    x = torch.randn(6, 9, 11, C)
    rope = AxialRoPE(C // HEADS)
    with torch.no_grad():
        batched = attn(x, rope=rope)
        single = torch.cat([attn(x[i:i + 1], rope=rope) for i in range(len(x))])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def two_maps(attn, main, anchor, rope=None):
    """``attn`` on the tokens of two maps laid end to end, split back into maps."""
    grids = (tuple(main.shape[1:3]), tuple(anchor.shape[1:3]))
    out = attn(torch.cat([main.flatten(1, 2), anchor.flatten(1, 2)], dim=1), grids, rope)
    n = main.shape[1] * main.shape[2]
    return out[:, :n].view_as(main), out[:, n:].view_as(anchor)


def test_multi_scale_attention_equals_per_map_attention_and_shares_pad_token():
    torch.manual_seed(5)
    ms = build('MultiScaleKVPadSwinAttention', window_size=4, shift_size=2)  # the old name, for configs
    single = build('KVPadSwinAttention', window_size=4, shift_size=2)
    single.load_state_dict(ms.state_dict())
    main, anchor = torch.randn(2, 10, 12, C), torch.randn(2, 4, 4, C)
    rope = AxialRoPE(C // HEADS)
    out_main, out_anchor = two_maps(ms, main, anchor, rope)
    torch.testing.assert_close(out_main, single(main, rope=rope), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_anchor, single(anchor, rope=rope), rtol=1e-5, atol=1e-5)
    flash_ms = build('MultiScaleFlashSwinAttention', window_size=4, shift_size=2)
    flash = build('FlashSwinAttention', window_size=4, shift_size=2)
    flash.load_state_dict(flash_ms.state_dict())
    torch.testing.assert_close(two_maps(flash_ms, main, anchor)[1], flash(anchor), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- registry-driven
def attention_variants():
    names = []
    for name, cls in MODELS.module_dict.items():
        if isinstance(cls, type) and issubclass(cls, FlexibleLocalAttention):
            names.append(name)
    return sorted(names)


def test_every_variant_is_registered():
    assert {'GlobalAttention', 'PlainSwinAttention', 'FlashSwinAttention', 'KVPadSwinAttention',
            'DilatedAttention', 'MultiScaleFlashSwinAttention',
            'MultiScaleKVPadSwinAttention'} <= set(attention_variants())


@pytest.mark.parametrize('name', attention_variants())
def test_registered_variant_builds_runs_and_trains(name):
    cls = MODELS.get(name)
    cfg = dict(type=name, embed_dim=C, num_heads=HEADS)
    if 'window_size' in cls.__init__.__code__.co_varnames or issubclass(cls, MODELS.get('FlashSwinAttention')):
        cfg.update(window_size=4, shift_size=2)
    if name == 'DilatedAttention':
        cfg.update(dilation=2)
    attn = MODELS.build(cfg)
    x = torch.randn(2, 6, 7, C, requires_grad=True)  # 6x7 with shift 2: every window has pad slots
    rope = AxialRoPE(C // HEADS)
    out = attn(x, rope=rope)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in attn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f'{name}.{pname} got no gradient'
    assert set(dict(attn.named_parameters())) <= {'qkv.weight', 'qkv.bias', 'proj.weight', 'proj.bias', 'padding'}


def test_public_contract_shapes():
    attn = MODELS.build(dict(type='FlashSwinAttention', embed_dim=768, num_heads=12, window_size=16,
                             shift_size=8, backend='auto'))
    assert tuple(attn.qkv.weight.shape) == (3 * 768, 768) and tuple(attn.proj.weight.shape) == (768, 768)
    assert attn.scale == 64 ** -0.5
    pad = MODELS.build(dict(type='KVPadSwinAttention', embed_dim=768, num_heads=12, window_size=16, shift_size=8))
    assert tuple(pad.padding.shape) == (1, 768)
    x = torch.randn(1, 20, 18, 768)
    assert attn(x).shape == x.shape and pad(x).shape == x.shape


def test_qkv_split_follows_timm_order():
    """qkv output splits as (3, heads, head_dim): q of head 1 is rows [d, 2d) of qkv."""
    torch.manual_seed(6)
    attn = build('GlobalAttention')
    x = torch.randn(1, 1, 2, C)
    with torch.no_grad():
        attn.qkv.weight[C:] = 0  # k = bias only: every key equal, attention uniform
        attn.qkv.bias[C:2 * C] = 0
        out = attn(x)
        v = F.linear(x, attn.qkv.weight[2 * C:], attn.qkv.bias[2 * C:]).mean(2, keepdim=True)
        torch.testing.assert_close(out, F.linear(v, attn.proj.weight, attn.proj.bias).expand_as(out))


# ----------------------------------------------------------------------------- backends
def test_unknown_and_unavailable_backends_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match='unknown attention backend'):
        build('FlashSwinAttention', backend='cuda-magic')
    with pytest.raises(ValueError, match="'sdpa' or 'reference'"):
        build('PlainSwinAttention', window_size=4, backend='flex')
    attn = build('FlashSwinAttention', window_size=4, backend='xformers')
    with pytest.raises(BackendUnavailableError, match='xformers'):
        attn(torch.randn(1, 4, 4, C))
    flex = build('FlashSwinAttention', window_size=4, backend='flex')
    with pytest.raises(BackendUnavailableError, match='no backward on CPU'):
        flex(torch.randn(1, 4, 4, C, requires_grad=True))


def test_auto_follows_the_switch(monkeypatch):
    attn = build('FlashSwinAttention', window_size=4, shift_size=2)
    x = torch.randn(1, 6, 6, C)
    with torch.no_grad():
        expected = attn(x)
        set_backends(attention='reference')
        try:
            torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)
        finally:
            set_backends(attention='auto')
    monkeypatch.setenv('MMHRSAM_ATTENTION_BACKEND', 'nonsense')
    with pytest.raises(ValueError, match='MMHRSAM_ATTENTION_BACKEND'):
        attn(x)


def test_bad_input_shapes_are_clear_errors():
    attn = build('FlashSwinAttention', window_size=4)
    with pytest.raises(ValueError, match=r'\(B, H, W, C\)'):
        attn(torch.randn(2, 16, C))
    with pytest.raises(ValueError, match='channels'):
        attn(torch.randn(1, 4, 4, C + 1))


@pytest.mark.parametrize('type_,kw,shape', [
    ('FlashSwinAttention', dict(window_size=4, shift_size=2), (2, 10, 13)),
    ('KVPadSwinAttention', dict(window_size=4, shift_size=2), (2, 6, 6)),     # per-group layout
    ('KVPadSwinAttention', dict(window_size=4, shift_size=2), (2, 18, 20)),   # all-slot layout
    ('PlainSwinAttention', dict(window_size=4, shift_size=2), (2, 10, 13)),
    ('DilatedAttention', dict(dilation=3), (1, 7, 8)),
])
def test_layers_compile_without_graph_breaks(type_, kw, shape):
    """Index maps come from a warm cache as guarded constants, not traced rebuilds."""
    attn = build(type_, **kw)
    x = torch.randn(*shape, C)
    rope = AxialRoPE(C // HEADS)
    expected = attn(x, rope=rope)
    compiled = torch.compile(attn, backend='eager', fullgraph=True)
    torch.testing.assert_close(compiled(x, rope=rope), expected)
