"""HRSAM and HRSAM++ backbones: paper sizes, structure, any input size, batching,
precision, gradient checkpointing, and the multi-scale design against single-scale runs."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmhrsam.registry import MODELS

SMALL = dict(embed_dim=64, depth=4, num_heads=4, num_stages=2, window_size=4,
             cycle_scan_cfg=dict(type='CycleScan', d_state=8), pretrain_grid=6)


def build(type_='HRSAM', **kw):
    cfg = dict(type=type_, **SMALL)
    if type_ == 'HRSAMPlusPlus':
        cfg.update(anchor_size=64, ms_cycle_scan_cfg=dict(type='MultiScaleCycleScan', d_state=8))
    cfg.update(kw)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_paper_vit_b_parameter_counts():
    assert n_params(MODELS.build(dict(type='HRSAM'))) == 96_369_152
    assert n_params(MODELS.build(dict(type='HRSAMPlusPlus'))) == 106_934_016


def test_released_checkpoint_names():
    names = set(MODELS.build(dict(type='HRSAM')).state_dict())
    for key in ['patch_embed.proj.weight', 'pos_embed', 'blocks.0.norm1.weight', 'blocks.0.attn.qkv.weight',
                'blocks.0.attn.proj.bias', 'blocks.11.attn.padding', 'blocks.3.mlp.fc1.weight',
                'blocks.3.mlp.fc2.bias', 'mamba_blocks.3.in_proj.0.weight', 'mamba_blocks.0.As_log',
                'mamba_blocks.0.ssm_proj_bias', 'lateral_convs.2.0.weight', 'lateral_convs.2.1.bias',
                'out_conv.0.weight', 'out_conv.2.weight']:
        assert key in names, key
    pp = set(MODELS.build(dict(type='HRSAMPlusPlus')).state_dict())
    for key in ['ss_mamba_blocks.0.Ds', 'ms_mamba_blocks.3.gamma', 'multi_scale_fusion.1.0.weight']:
        assert key in pp, key
    assert not any(k.startswith('mamba_blocks.') for k in pp)


def test_windows_alternate_and_cycle_scan_precedes_each_stage_end():
    model = build(depth=6, num_stages=2)
    assert [b.attn.shift_size for b in model.blocks] == [0, 2, 0, 2, 0, 2]
    order = []
    for name, mod in list(model.blocks.named_children()) + [(f'scan{i}', m) for i, m in enumerate(model.mamba_blocks)]:
        mod.register_forward_hook(lambda *_, n=name: order.append(n))
    model(torch.randn(1, 3, 64, 64))
    assert order == ['0', '1', 'scan0', '2', '3', '4', 'scan1', '5']


@pytest.mark.parametrize('type_', ['HRSAM', 'HRSAMPlusPlus'])
def test_any_input_size_equals_explicit_zero_padding(type_):
    model = build(type_).eval()
    img = torch.randn(1, 3, 100, 130)
    with torch.no_grad():
        out = model(img)[0]
        padded = model(F.pad(img, (0, 14, 0, 12)))[0]  # to 112 x 144
    assert out.shape == (1, 256, 7, 9)
    torch.testing.assert_close(out, padded)


@pytest.mark.parametrize('type_', ['HRSAM', 'HRSAMPlusPlus'])
def test_batch_equals_per_sample(type_):
    model = build(type_).eval()
    img = torch.randn(3, 3, 96, 128)
    with torch.no_grad():
        batched = model(img)[0]
        single = torch.cat([model(img[i:i + 1])[0] for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('type_', ['HRSAM', 'HRSAMPlusPlus'])
def test_bf16_autocast_close_to_fp32(type_):
    model = build(type_).eval()
    img = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        ref = model(img)[0]
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = model(img)[0]
    rel = ((low.float() - ref).norm() / ref.norm()).item()
    assert rel < 5e-2


@pytest.mark.parametrize('type_', ['HRSAM', 'HRSAMPlusPlus'])
def test_gradient_checkpointing_gives_the_same_gradients(type_):
    model = build(type_, drop_path_rate=0.0).train()
    ckpt = copy.deepcopy(model)
    ckpt.with_cp = True
    img = torch.randn(2, 3, 64, 80)
    grads = []
    for m in (model, ckpt):
        m(img)[0].square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(model.parameters()))
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


def test_out_indices_give_stage_features_like_mmseg_vit():
    model = build(out_indices=(0, 1)).eval()
    feats = model(torch.randn(2, 3, 64, 96))
    assert isinstance(feats, tuple) and [f.shape for f in feats] == [(2, 64, 4, 6)] * 2
    pp = build('HRSAMPlusPlus', out_indices=(1, )).eval()
    assert pp(torch.randn(1, 3, 64, 64))[0].shape == (1, 128, 4, 4)


def test_position_embedding_is_resized_bilinearly_without_the_class_slot():
    model = build()
    grid = model.pretrain_grid
    table = model.pos_embed[0, 1:].reshape(grid, grid, -1)
    torch.testing.assert_close(model.resized_pos_embed((grid, grid))[0], table)
    resized = F.interpolate(table.permute(2, 0, 1)[None], size=(9, 4), mode='bilinear', align_corners=False)
    torch.testing.assert_close(model.resized_pos_embed((9, 4))[0], resized[0].permute(1, 2, 0))


class IdentityScan(nn.Module):
    def forward(self, x, grids):
        return x


def test_hrsam_plus_plus_scales_only_meet_in_cycle_scan_and_fusion():
    """Without the multi-scale Cycle-scan, each scale must be exactly single-scale HRSAM
    on its own image (windows never mix scales; one pad token shared by both)."""
    pp = build('HRSAMPlusPlus', cycle_scan_cfg=None, out_indices=(0, 1)).eval()
    pp.ms_mamba_blocks = nn.ModuleList([IdentityScan(), IdentityScan()])
    single = build('HRSAM', cycle_scan_cfg=None, out_indices=(0, 1)).eval()
    shared = {k: v for k, v in pp.state_dict().items() if not k.startswith('lateral_convs')}
    single.load_state_dict(shared, strict=False)
    img = torch.randn(2, 3, 96, 128)
    anchor = F.interpolate(img, size=(64, 64), mode='bilinear', align_corners=False)
    with torch.no_grad():
        feats = pp(img)
        main, small = single(img), single(anchor)
    for stage, f in enumerate(feats):
        norm = pp.multi_scale_fusion[stage][0]
        up = F.interpolate(small[stage], size=(6, 8), mode='bilinear', align_corners=False)
        expected = torch.cat([norm(main[stage].permute(0, 2, 3, 1)), norm(up.permute(0, 2, 3, 1))], -1)
        torch.testing.assert_close(f, expected.permute(0, 3, 1, 2), rtol=1e-5, atol=1e-5)


TABLE3 = {
    'global': dict(attn_cfg=dict(type='GlobalAttention'), cycle_scan_cfg=None),
    'flash-swin': dict(attn_cfg=dict(type='FlashSwinAttention'), cycle_scan_cfg=None),
    'plain-swin': dict(attn_cfg=dict(type='PlainSwinAttention'), cycle_scan_cfg=None),
    'kv-pad': dict(attn_cfg=dict(type='KVPadSwinAttention'), cycle_scan_cfg=None),
    'dilated': dict(attn_cfg=dict(type='DilatedAttention', dilation=2), cycle_scan_cfg=None),
    'kv-pad+cycle-scan': dict(),
}


@pytest.mark.parametrize('row', sorted(TABLE3))
def test_ablation_variants_build_run_and_train(row):
    model = build(**TABLE3[row]).train()
    out = model(torch.randn(2, 3, 80, 96))[0]
    assert out.shape == (2, 256, 5, 6) and torch.isfinite(out).all()
    out.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    # non-shift windows on a 5x6 grid with window 4 leave virtual slots, so every pad token is used
    assert no_grad == []


def test_flash_and_plain_swin_backbones_are_identical():
    flash = build(attn_cfg=dict(type='FlashSwinAttention'), cycle_scan_cfg=None).eval()
    plain = build(attn_cfg=dict(type='PlainSwinAttention'), cycle_scan_cfg=None).eval()
    plain.load_state_dict(flash.state_dict())
    img = torch.randn(1, 3, 112, 80)
    with torch.no_grad():
        torch.testing.assert_close(flash(img)[0], plain(img)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('type_,kw,match', [
    ('HRSAM', dict(attn_cfg=dict(type='KVPadSwinAttention', shift_size=2)), 'shift_size'),
    ('HRSAM', dict(attn_cfg=dict(type='GlobalAttention', num_heads=2)), 'num_heads'),
    ('HRSAM', dict(cycle_scan_cfg=dict(type='CycleScan', d_state=8, embed_dim=32)), 'embed_dim'),
    ('HRSAMPlusPlus', dict(attn_cfg=dict(type='FlashSwinAttention', shift_size=0)), 'shift_size'),
    ('HRSAMPlusPlus', dict(ms_cycle_scan_cfg=dict(type='CycleScan', d_state=8)), 'jointly'),
    ('HRSAMPlusPlus', dict(anchor_size=60), 'multiple of patch_size'),
])
def test_conflicting_arguments_are_errors(type_, kw, match):
    """What the encoder sets per block (shift, width, heads) or needs (a joint multi-scale
    scan) cannot be given otherwise: an error, never a silent overwrite."""
    with pytest.raises(ValueError, match=match):
        build(type_, **kw)


def test_matching_fixed_arguments_are_accepted():
    model = build('HRSAM', attn_cfg=dict(type='KVPadSwinAttention', num_heads=4, embed_dim=64))
    assert [b.attn.shift_size for b in model.blocks] == [0, 2, 0, 2]


def test_plus_plus_scans_each_grid_alone_then_both_jointly():
    """HRSAM++'s single-scale scans see one grid at a time and its multi-scale scans the
    joint sequence: feeding a scan-free copy of the model its tokens by hand gives the same."""
    pp = build('HRSAMPlusPlus').eval()
    img = torch.randn(1, 3, 64, 96)
    x, grids = pp.embed_inputs(img)
    n = grids[0][0] * grids[0][1]
    with torch.no_grad():
        for stage in range(pp.num_stages):
            for i in range(stage * pp.stage_depth, (stage + 1) * pp.stage_depth):
                if i == (stage + 1) * pp.stage_depth - 1:
                    scan = pp.ss_mamba_blocks[stage]
                    x = torch.cat([scan(x[:, :n]), scan(x[:, n:])], dim=1)
                x = pp.blocks[i](x, grids, pp.rope)
            x = pp.ms_mamba_blocks[stage](x)  # no grids: one sequence
        expected = pp.fuse_scales(pp.num_stages - 1, x, grids)
        got = pp.forward_stages(img)[-1]
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
