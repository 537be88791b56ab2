"""Every registered backbone, token mixer and neck builds from a tiny config, runs forward
and backward on CPU, and gives finite outputs and a finite gradient to every parameter.

A new registration in one of these families fails here until it gets a tiny config in
:data:`TINY`, so it is covered automatically from then on (timm's registry-wide test).
"""
import inspect

import pytest
import torch
from torch import nn

import mmhrsam  # noqa: F401  (registers the models)
from mmhrsam.models.attention import FlexibleLocalAttention
from mmhrsam.models.layers import CycleScan
from mmhrsam.registry import MODELS

C = 16
ENCODER = dict(embed_dim=C, depth=2, num_heads=2, num_stages=2, window_size=4, pretrain_grid=4,
               cycle_scan_cfg=dict(type='CycleScan', d_state=4))
#: type name -> (family, tiny config without ``type``).
TINY = {
    'HRSAM': ('backbone', ENCODER),
    'HRSAMPlusPlus': ('backbone', dict(ENCODER, anchor_size=32,
                                       ms_cycle_scan_cfg=dict(type='MultiScaleCycleScan', d_state=4))),
    'SAMViT': ('backbone', dict(img_size=64, arch=dict(embed_dim=C, depth=2, num_heads=2,
                                                       global_attn_indexes=(1, )))),
    'SAMLightening': ('backbone', dict(img_size=64, arch=dict(embed_dim=C, depth=2, num_heads=2,
                                                              attn_pattern=('window', 2)))),
    'GlobalAttention': ('mixer', dict(embed_dim=C, num_heads=2)),
    'DilatedAttention': ('mixer', dict(embed_dim=C, num_heads=2, dilation=2)),
    'FlashSwinAttention': ('mixer', dict(embed_dim=C, num_heads=2, window_size=4, shift_size=2)),
    'KVPadSwinAttention': ('mixer', dict(embed_dim=C, num_heads=2, window_size=4, shift_size=2)),
    'PlainSwinAttention': ('mixer', dict(embed_dim=C, num_heads=2, window_size=4, shift_size=2)),
    'MultiScaleFlashSwinAttention': ('mixer', dict(embed_dim=C, num_heads=2, window_size=4, shift_size=2)),
    'MultiScaleKVPadSwinAttention': ('mixer', dict(embed_dim=C, num_heads=2, window_size=4, shift_size=2)),
    'CycleScan': ('mixer', dict(embed_dim=C, d_state=4)),
    'MultiScaleCycleScan': ('mixer', dict(embed_dim=C, d_state=4)),
    'MultiStageFusionNeck': ('neck', dict(in_channels=C, out_channels=8, num_stages=1)),
    'SimpleFeaturePyramid': ('neck', dict(in_channels=C, out_channels=8)),
}


def family(cls) -> str:
    """The family a registered class belongs to, from where it lives and what it is."""
    if issubclass(cls, (FlexibleLocalAttention, CycleScan)):
        return 'mixer'
    module = inspect.getmodule(cls).__name__
    for name in ('backbone', 'neck'):
        if f'.{name}s.' in module:
            return name
    return ''


def registered():
    return sorted((name, family(cls)) for name, cls in MODELS.module_dict.items() if family(cls))


def test_every_registered_type_has_a_tiny_config():
    missing = [name for name, _ in registered() if name not in TINY]
    assert not missing, f'registered without a tiny config in {__file__}: {missing}'
    assert {(name, fam) for name, fam in registered()} == {(name, fam) for name, (fam, _) in TINY.items()}


def run(name: str, module: nn.Module, fam: str):
    gen = torch.Generator().manual_seed(0)
    if fam == 'backbone':
        size = (64, 64) if name.startswith('SAM') else (80, 52)  # 5 x 4 tokens: windows with pad slots
        return module(torch.randn(2, 3, *size, generator=gen))
    if fam == 'neck':
        return module([torch.randn(2, C, 6, 5, generator=gen)])
    grids = ((5, 6), ) if name == 'PlainSwinAttention' else ((5, 6), (3, 3))  # windows with pad slots
    x = torch.randn(2, sum(h * w for h, w in grids), C, generator=gen)
    return (module(x, grids) if isinstance(module, CycleScan) else module(x, grids, None), )


@pytest.mark.parametrize('name', sorted(TINY))
def test_forward_backward_finite(name):
    fam, cfg = TINY[name]
    torch.manual_seed(0)
    module = MODELS.build(dict(type=name, **cfg))
    outs = run(name, module, fam)
    assert outs and all(torch.isfinite(o).all() for o in outs)
    sum(o.square().mean() for o in outs).backward()
    for pname, p in module.named_parameters():
        assert p.grad is not None, f'{name}.{pname} got no gradient'
        assert torch.isfinite(p.grad).all(), f'{name}.{pname} has a non-finite gradient'
