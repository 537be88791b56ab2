"""Every FLA variant's gradients with the inverse-gather backward equal those of autograd's own
indexing backward (the token reorderings were plain ``x[:, index]`` before)."""
import pytest
import torch

from mmhrsam.models.attention import base
from mmhrsam.registry import MODELS

C, HEADS = 32, 4
VARIANTS = [
    dict(type='FlashSwinAttention', window_size=4, shift_size=2),
    dict(type='KVPadSwinAttention', window_size=4, layout='slots'),   # pad slots: every slot queries
    dict(type='KVPadSwinAttention', window_size=4, layout='groups'),  # pad slots: key groups only
    dict(type='PlainSwinAttention', window_size=4, shift_size=2),
    dict(type='DilatedAttention', dilation=2),
    dict(type='GlobalAttention'),
]


def grads(cfg, x):
    torch.manual_seed(0)
    layout = cfg.get('layout')
    module = MODELS.build(dict({k: v for k, v in cfg.items() if k != 'layout'}, embed_dim=C, num_heads=HEADS))
    if layout is not None:  # force the layout (chosen by the slot overhead otherwise)
        module.slot_layout_max_overhead = 10.0 if layout == 'slots' else -1.0
    x = x.detach().requires_grad_()
    out = module(x)
    out.backward(torch.linspace(-1, 1, out.numel()).reshape(out.shape))
    return [x.grad] + [p.grad for p in module.parameters() if p.grad is not None]


@pytest.mark.parametrize('cfg', VARIANTS, ids=lambda c: '-'.join([c['type']] + ([c['layout']] if 'layout' in c else [])))
def test_gradients_equal_autograd_indexing(cfg, monkeypatch):
    x = torch.randn(2, 10, 14, C, generator=torch.Generator().manual_seed(1))  # windows do not divide
    got = grads(cfg, x)
    monkeypatch.setattr(base, 'gather_rows', lambda rows, index, inverse: rows[:, index])
    want = grads(cfg, x)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
