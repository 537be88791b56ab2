"""MultiStageFusionNeck against a functional reference, and its composition in HRSAM / HRSAM++."""
import pytest
import torch
import torch.nn.functional as F

from mmhrsam.models.necks import MultiStageFusionNeck
from mmhrsam.registry import MODELS


def reference(neck, feats):
    """The fusion written out with torch.nn.functional on channels-first maps."""
    total = 0
    for lateral, f in zip(neck.lateral_convs, feats):
        linear, norm = lateral
        x = torch.einsum('bchw,oc->bhwo', f, linear.weight)
        total = total + F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    conv, norm = neck.out_conv[0], neck.out_conv[2]
    y = F.conv2d(total.permute(0, 3, 1, 2), conv.weight, padding=1, groups=conv.groups)
    y = F.layer_norm(y.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    return y.permute(0, 3, 1, 2)


def test_matches_functional_reference_and_checks_stage_count():
    torch.manual_seed(0)
    neck = MODELS.build(dict(type='MultiStageFusionNeck', in_channels=12, out_channels=8, num_stages=3))
    for p in neck.parameters():  # away from the LN's identity initialization
        p.data.normal_()
    feats = [torch.randn(2, 12, 5, 7) for _ in range(3)]
    (out, ) = neck(feats)
    assert out.shape == (2, 8, 5, 7)
    torch.testing.assert_close(out, reference(neck, feats), rtol=1e-5, atol=1e-5)
    assert sorted(neck.state_dict()) == sorted(
        [f'lateral_convs.{k}.{i}.{n}' for k in range(3) for i, n in ((0, 'weight'), (1, 'weight'), (1, 'bias'))]
        + ['out_conv.0.weight', 'out_conv.2.weight', 'out_conv.2.bias'])
    with pytest.raises(ValueError, match='takes 3 stage maps, got 2'):
        neck(feats[:2])


@pytest.mark.parametrize('type_,extra', [
    ('HRSAM', {}),
    ('HRSAMPlusPlus', dict(anchor_size=32, ms_cycle_scan_cfg=dict(type='MultiScaleCycleScan', d_state=4))),
])
def test_encoder_embedding_is_the_neck_on_its_stage_outputs(type_, extra):
    cfg = dict(type=type_, embed_dim=16, depth=2, num_heads=2, num_stages=2, window_size=4, pretrain_grid=4,
               out_channels=8, cycle_scan_cfg=dict(type='CycleScan', d_state=4), **extra)
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    stages = MODELS.build(dict(cfg, out_indices=(0, 1))).eval()
    stages.load_state_dict(model.state_dict())
    img = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        (embedding, ) = model(img)
        expected = reference(model.neck, stages(img))
    torch.testing.assert_close(embedding, expected, rtol=1e-5, atol=1e-5)
    # The neck's parameters are the encoder's, under the released names (no `neck.` keys).
    assert model.neck.lateral_convs is model.lateral_convs and model.neck.out_conv is model.out_conv
    assert not any(k.startswith('neck.') for k in model.state_dict())
    assert model.neck.in_channels == (32 if type_ == 'HRSAMPlusPlus' else 16)
