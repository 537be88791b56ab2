"""Shifted windows for any window k and shift s, against slow per-window loops written here
from the two definitions (see docs/architecture.md, "Flash Swin and Plain Swin"):

* Swin (Plain Swin): the grid is padded at the bottom/right to a multiple of k with virtual
  tokens (which take no part), rolled by -s, cut into k x k windows; inside a window a token
  sees only tokens of its own region (Swin's row/column slices [0, Hp-k), [Hp-k, Hp-s),
  [Hp-s, Hp) of the rolled grid); the result is rolled back.
* Flash Swin: k x k windows tiling the grid from row and column -s, no roll, no mask; a
  token sees the real tokens of its window.

The two coincide exactly when k divides 2s (s = 0 or s = k/2), on every grid; otherwise
Flash Swin with shift s has the windows of Swin with shift k - s.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from mmhrsam.models.layers import AxialRoPE
from mmhrsam.ops.attention import available_backends
from mmhrsam.registry import MODELS

C, HEADS = 16, 2
D = C // HEADS
BACKENDS = available_backends('cpu')


def build(type_, **kw):
    return MODELS.build(dict(type=type_, embed_dim=C, num_heads=HEADS, **kw))


def attend(module, x, queries, keys, pos, rope):
    """float64 attention of tokens ``queries`` over ``keys`` ((y, x) lists) of x (H, W, C)."""
    w, b = module.qkv.weight.double(), module.qkv.bias.double()
    q = F.linear(torch.stack([x[p] for p in queries]), w, b)[:, :C].view(1, -1, HEADS, D)
    kv = F.linear(torch.stack([x[p] for p in keys]), w, b)[:, C:].view(1, -1, 2, HEADS, D)
    k, v = kv[:, :, 0], kv[:, :, 1]
    q = rope(q, torch.tensor([pos(p) for p in queries]).double())[0]
    k = rope(k, torch.tensor([pos(p) for p in keys]).double())[0]
    att = torch.einsum('qhd,khd->hqk', q, k) / math.sqrt(D)
    out = torch.einsum('hqk,khd->qhd', att.softmax(-1), v[0]).reshape(len(queries), C)
    return F.linear(out, module.proj.weight.double(), module.proj.bias.double())


def swin_loop_reference(module, x, k, s, rope):
    """Swin's roll + region mask, window by window, token by token. x (H, W, C) float64."""
    H, W, _ = x.shape
    hp, wp = math.ceil(H / k) * k, math.ceil(W / k) * k
    out = torch.zeros_like(x)

    def region(i, n):  # Swin's slices of the rolled axis
        return 0 if i < n - k else (1 if i < n - s else 2)

    for wy in range(hp // k):
        for wx in range(wp // k):
            rolled = [(wy * k + i, wx * k + j) for i in range(k) for j in range(k)]
            # rolled (r, c) holds original ((r + s) % hp, (c + s) % wp); drop virtual tokens
            tokens = [((r + s) % hp, (c + s) % wp, region(r, hp) if s else 0, region(c, wp) if s else 0)
                      for r, c in rolled]
            tokens = [t for t in tokens if t[0] < H and t[1] < W]
            for label in {t[2:] for t in tokens}:
                group = [t[:2] for t in tokens if t[2:] == label]
                res = attend(module, x, group, group, lambda p: (p[0] + s, p[1] + s), rope)
                for p, row in zip(group, res):
                    out[p] = row
    return out


def flash_loop_reference(module, x, k, s, rope):
    """Windows tiling the grid from -s; each window's real tokens attend to each other."""
    H, W, _ = x.shape
    out = torch.zeros_like(x)
    for y0 in range(-s, H, k):
        for x0 in range(-s, W, k):
            group = [(y, x_) for y in range(max(y0, 0), min(y0 + k, H))
                     for x_ in range(max(x0, 0), min(x0 + k, W))]
            res = attend(module, x, group, group, lambda p: (p[0] + s, p[1] + s), rope)
            for p, row in zip(group, res):
                out[p] = row
    return out


def run(module, x, rope):
    with torch.no_grad():
        return module(x[None].float(), rope=rope)[0]


# odd windows and shifts, including the reported case (k=3, s=1 at 4x4, 5x7, 6x6), and one
# even window with a shift other than 0 and k/2
CASES = [(4, 4, 3, 1), (5, 7, 3, 1), (6, 6, 3, 1), (7, 5, 3, 2), (2, 8, 3, 1),
         (9, 11, 5, 2), (8, 10, 5, 3), (11, 6, 7, 3), (7, 9, 4, 1), (5, 5, 3, 0)]
GRIDS = [(4, 4), (5, 7), (6, 6)]


@pytest.mark.parametrize('h,w,k,s', CASES)
def test_plain_swin_equals_swin_loop(h, w, k, s):
    torch.manual_seed(h * 31 + w + k * 7 + s)
    attn = build('PlainSwinAttention', window_size=k, shift_size=s)
    x, rope = torch.randn(h, w, C, dtype=torch.float64), AxialRoPE(D)
    with torch.no_grad():
        ref = swin_loop_reference(attn, x, k, s, rope)
    torch.testing.assert_close(run(attn, x, rope), ref.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('h,w,k,s', CASES)
@pytest.mark.parametrize('backend', BACKENDS)
def test_flash_swin_equals_flash_loop(h, w, k, s, backend):
    torch.manual_seed(h * 31 + w + k * 7 + s)
    attn = build('FlashSwinAttention', window_size=k, shift_size=s, backend=backend)
    x, rope = torch.randn(h, w, C, dtype=torch.float64), AxialRoPE(D)
    with torch.no_grad():
        ref = flash_loop_reference(attn, x, k, s, rope)
    torch.testing.assert_close(run(attn, x, rope), ref.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('h,w', GRIDS)
@pytest.mark.parametrize('k,s', [(3, 1), (5, 2), (4, 1)])
def test_flash_and_plain_differ_when_window_does_not_divide_twice_the_shift(h, w, k, s):
    """The reported difference is one of definition: the loops differ just as the layers do,
    and Flash Swin's windows are Swin's for shift k - s (RoPE is relative, so the position
    offset k - 2s between them does not matter)."""
    torch.manual_seed(0)
    x, rope = torch.randn(h, w, C, dtype=torch.float64), AxialRoPE(D)
    flash = build('FlashSwinAttention', window_size=k, shift_size=s)
    with torch.no_grad():
        swin_ref = swin_loop_reference(flash, x, k, s, rope)
        flash_ref = flash_loop_reference(flash, x, k, s, rope)
        mirrored_ref = swin_loop_reference(flash, x, k, k - s, rope)
    assert (swin_ref - flash_ref).abs().max() > 1e-2
    torch.testing.assert_close(flash_ref, mirrored_ref, rtol=1e-5, atol=1e-5)
    plain = build('PlainSwinAttention', window_size=k, shift_size=k - s)
    plain.load_state_dict(flash.state_dict())
    torch.testing.assert_close(run(flash, x, rope), run(plain, x, rope), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('h,w', GRIDS + [(2, 3), (9, 11)])
@pytest.mark.parametrize('k,s', [(3, 0), (6, 3), (2, 1), (5, 0)])
def test_flash_equals_plain_when_window_divides_twice_the_shift(h, w, k, s):
    torch.manual_seed(1)
    x, rope = torch.randn(h, w, C, dtype=torch.float64), AxialRoPE(D)
    flash = build('FlashSwinAttention', window_size=k, shift_size=s)
    plain = build('PlainSwinAttention', window_size=k, shift_size=s)
    plain.load_state_dict(flash.state_dict())
    with torch.no_grad():
        ref = swin_loop_reference(flash, x, k, s, rope)
    torch.testing.assert_close(run(flash, x, rope), ref.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(run(plain, x, rope), ref.float(), rtol=1e-5, atol=1e-5)
