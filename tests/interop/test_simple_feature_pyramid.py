"""SimpleFeaturePyramid against a functional re-statement of ViTDet's simple feature pyramid
(torch.nn.functional ops on the module's weights), output strides and argument checks."""
import pytest
import torch
import torch.nn.functional as F

import mmhrsam  # noqa: F401
from mmhrsam.registry import MODELS


def channel_norm(x, weight, bias, eps=1e-6):
    """LayerNorm over the channels of an NCHW map, through F.layer_norm on NHWC."""
    return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], weight, bias, eps).permute(0, 3, 1, 2)


def reference_pyramid(x, sd, num_outs):
    """ViTDet's recipe written out: x4 = deconv, LN, GELU, deconv; x2 = deconv; x1 = identity;
    x0.5 = 2x2 max-pool; each then 1x1 conv, LN, 3x3 conv, LN; extra levels 1x1 max-pool,
    stride 2."""
    def deconv(t, key):
        return F.conv_transpose2d(t, sd[f'{key}.weight'], sd[f'{key}.bias'], stride=2)

    resampled = [
        deconv(F.gelu(channel_norm(deconv(x, 'levels.0.0.0'), sd['levels.0.0.1.weight'],
                                   sd['levels.0.0.1.bias'])), 'levels.0.0.3'),
        deconv(x, 'levels.1.0'),
        x,
        F.max_pool2d(x, 2, 2),
    ]
    outs = []
    for i, t in enumerate(resampled):
        t = channel_norm(F.conv2d(t, sd[f'levels.{i}.1.weight']), sd[f'levels.{i}.2.weight'], sd[f'levels.{i}.2.bias'])
        t = channel_norm(F.conv2d(t, sd[f'levels.{i}.3.weight'], padding=1), sd[f'levels.{i}.4.weight'],
                         sd[f'levels.{i}.4.bias'])
        outs.append(t)
    while len(outs) < num_outs:
        outs.append(outs[-1][:, :, ::2, ::2])  # 1x1 max-pool with stride 2 is subsampling
    return outs


def test_matches_the_functional_recipe_on_an_odd_grid():
    torch.manual_seed(0)
    neck = MODELS.build(dict(type='SimpleFeaturePyramid', in_channels=16, out_channels=8, num_outs=5))
    neck.init_weights()
    with torch.no_grad():  # non-trivial norm affines, so a swapped weight and bias would show
        for name, p in neck.named_parameters():
            if p.ndim == 1:
                p.uniform_(0.5, 1.5)
    x = torch.randn(2, 16, 7, 9)  # odd sides: pooling rounds down, extra levels round up
    outs = neck((x, ))
    ref = reference_pyramid(x, dict(neck.state_dict()), 5)
    assert [tuple(o.shape) for o in outs] == [(2, 8, 28, 36), (2, 8, 14, 18), (2, 8, 7, 9), (2, 8, 3, 4),
                                              (2, 8, 2, 2)]
    for o, r in zip(outs, ref):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5)


def test_strides_of_a_subset_of_levels():
    neck = MODELS.build(dict(type='SimpleFeaturePyramid', in_channels=12, out_channels=4,
                             scale_factors=(2, 1), num_outs=3))
    outs = neck((torch.randn(1, 12, 8, 8), ))
    assert [o.shape[-1] for o in outs] == [16, 8, 4]


@pytest.mark.parametrize('kwargs, match', [
    (dict(scale_factors=(1, 2)), 'strictly decreasing'),
    (dict(scale_factors=(3, 1)), 'not one of'),
    (dict(num_outs=3), 'num_outs'),
    (dict(in_channels=18), 'divisible by 4'),
])
def test_rejects_bad_arguments(kwargs, match):
    cfg = dict(type='SimpleFeaturePyramid', in_channels=16, out_channels=8)
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(cfg, **kwargs))


def test_rejects_several_backbone_maps():
    neck = MODELS.build(dict(type='SimpleFeaturePyramid', in_channels=16, out_channels=8))
    with pytest.raises(ValueError, match='out_indices'):
        neck((torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)))
    with pytest.raises(ValueError, match='expected'):
        neck((torch.randn(1, 8, 4, 4), ))
