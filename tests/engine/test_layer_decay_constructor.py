"""LayerDecayOptimWrapperConstructor: layer ids, lr scales, no-decay rules, registry scope."""
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmhrsam  # noqa: F401
from mmhrsam.engine import LayerDecayOptimWrapperConstructor
from mmhrsam.registry import MODELS

ROOT = __file__.rsplit('/tests/', 1)[0]
LR, WD, DECAY = 1e-4, 0.05, 0.9
SCAN = dict(type='CycleScan', d_state=4)
TINY = dict(embed_dim=32, depth=4, num_heads=2, num_stages=2, window_size=4, cycle_scan_cfg=SCAN)


def optim_cfg(wrapper='OptimWrapper', constructor='LayerDecayOptimWrapperConstructor', **paramwise):
    return dict(type=wrapper, optimizer=dict(type='AdamW', lr=LR, weight_decay=WD, betas=(0.9, 0.999)),
                constructor=constructor, paramwise_cfg=dict(layer_decay_rate=DECAY, **paramwise))


def build(model, **paramwise):
    with DefaultScope.overwrite_default_scope('mmhrsam'):
        return build_optim_wrapper(model, optim_cfg(**paramwise))


def tiny_hrsam(**overrides):
    return MODELS.build(dict(type='InteractiveSAM', backbone=dict(type='HRSAM', **TINY, **overrides)))


def assignment(optim_wrapper, model):
    """name -> (lr, weight_decay) as the optimizer holds them; each parameter at most once."""
    names = {id(p): n for n, p in model.named_parameters()}
    seen = {}
    for group in optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            name = names[id(p)]
            assert name not in seen, f'{name} is in two groups'
            seen[name] = (group['lr'], group['weight_decay'])
    return seen


# Written out for the tiny HRSAM (depth 4, 2 stages of 2 blocks, L = 4): which layer id each
# part has, and which leaves of each part are decayed. Cycle-scan k sits before block 2k+1,
# the last block of stage k, so it has that block's id 2k+2.
BLOCK_LEAVES = {'norm1.weight': False, 'norm1.bias': False, 'attn.padding': False, 'attn.qkv.weight': True,
                'attn.qkv.bias': False, 'attn.proj.weight': True, 'attn.proj.bias': False,
                'norm2.weight': False, 'norm2.bias': False, 'mlp.fc1.weight': True, 'mlp.fc1.bias': False,
                'mlp.fc2.weight': True, 'mlp.fc2.bias': False}
SCAN_LEAVES = {'ssm_proj_bias': False, 'As_log': False, 'Ds': False, 'gamma': False, 'in_norm.weight': False,
               'in_norm.bias': False, 'in_proj.0.weight': True, 'in_proj.0.bias': False, 'ssm_proj.weight': True,
               'ssm_proj.bias': False, 'out_norm.weight': False, 'out_norm.bias': False, 'out_proj.weight': True,
               'out_proj.bias': False}
PARTS = {  # prefix -> (layer id, leaves)
    'backbone.patch_embed.proj': (0, {'weight': True, 'bias': False}),
    'backbone': (0, {'pos_embed': False}),
    **{f'backbone.blocks.{i}': (i + 1, BLOCK_LEAVES) for i in range(4)},
    'backbone.mamba_blocks.0': (2, SCAN_LEAVES),
    'backbone.mamba_blocks.1': (4, SCAN_LEAVES),
    **{f'backbone.lateral_convs.{k}': (5, {'0.weight': True, '1.weight': False, '1.bias': False}) for k in range(2)},
    'backbone.out_conv': (5, {'0.weight': True, '2.weight': False, '2.bias': False}),
}


def expected_tiny_hrsam(model):
    expected = {}
    for prefix, (layer_id, leaves) in PARTS.items():
        for leaf, decayed in leaves.items():
            expected[f'{prefix}.{leaf}'] = (LR * DECAY ** (5 - layer_id), WD if decayed else 0.0)
    for name, param in model.head.named_parameters():  # head: top layer; matrices decayed
        decayed = param.ndim > 1 and not re.search(r'norm|\.bias$', name) and not name.endswith(
            ('output_upscaling.1.weight', 'mask_downscaling.1.weight', 'mask_downscaling.4.weight'))
        expected[f'head.{name}'] = (LR, WD if decayed else 0.0)
    return expected


def test_tiny_hrsam_groups_match_the_written_expectation():
    model = tiny_hrsam()
    got = assignment(build(model), model)
    expected = expected_tiny_hrsam(model)
    assert set(got) == set(expected) == {n for n, _ in model.named_parameters()}
    for name, (lr, wd) in expected.items():
        assert got[name] == (pytest.approx(lr), wd), name


def test_hrsam_plusplus_scans_and_fusion():
    model = MODELS.build(dict(type='HRSAMPlusPlus', anchor_size=32, ms_cycle_scan_cfg=dict(
        type='MultiScaleCycleScan', d_state=4), **TINY))  # the model is the backbone here
    got = assignment(build(model), model)
    assert len(got) == len(list(model.parameters()))
    for k, layer_id in ((0, 2), (1, 4)):
        for attr in ('ss_mamba_blocks', 'ms_mamba_blocks'):
            assert got[f'{attr}.{k}.in_proj.0.weight'] == (pytest.approx(LR * DECAY ** (5 - layer_id)), WD)
            assert got[f'{attr}.{k}.As_log'][1] == 0.0
        assert got[f'multi_scale_fusion.{k}.0.weight'] == (pytest.approx(LR), 0.0)
    assert got['pos_embed'] == (pytest.approx(LR * DECAY ** 5), 0.0)


NO_DECAY = re.compile(r'(pos_embed|padding|As_log|Ds|gamma|norm|bias|rel_pos_[hw])$|norm\d*\.|'
                      r'lateral_convs\.\d+\.1\.|out_conv\.2\.|multi_scale_fusion|neck\.[13]\.')


@pytest.mark.parametrize('backbone,num_params', [('HRSAM', 96_369_152), ('HRSAMPlusPlus', 106_934_016)])
def test_full_size_on_meta_device(backbone, num_params):
    """Full ViT-B models (parameters on 'meta': no memory): coverage, 12 layers, §7.7 names."""
    with torch.device('meta'):
        model = MODELS.build(dict(type='InteractiveSAM', backbone=dict(type=backbone)))
    constructor = LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=LR, weight_decay=WD)),
                                                    dict(layer_decay_rate=DECAY))
    groups = constructor.param_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    placed = [names[id(p)] for g in groups for p in g['params']]
    assert sorted(placed) == sorted(names.values())
    assert sum(p.numel() for g in groups for p in g['params'] if names[id(p)].startswith('backbone.')) == num_params
    assert {g['layer_id'] for g in groups} == set(range(14))
    for group in groups:
        assert group['lr'] == pytest.approx(LR * DECAY ** (13 - group['layer_id']))
        for p in group['params']:
            name = names[id(p)]
            exempt = bool(NO_DECAY.search(name)) or p.ndim == 1
            assert group['weight_decay'] == (0.0 if exempt else WD), name
            block = re.match(r'backbone\.blocks\.(\d+)\.', name)
            if block:
                assert group['layer_id'] == int(block.group(1)) + 1, name
            scan = re.match(r'backbone\.(?:ss_|ms_)?mamba_blocks\.(\d+)\.', name)
            if scan:  # before (or, multi-scale, after) block 3k+2 of stage k
                assert group['layer_id'] == 3 * int(scan.group(1)) + 3, name


def test_sam_vit_backbone_rel_pos_and_neck():
    model = MODELS.build(dict(type='SAMViT', img_size=64, arch=dict(embed_dim=32, depth=2, num_heads=2,
                                                                    global_attn_indexes=(1, ))))
    got = assignment(build(model), model)
    assert got['blocks.1.attn.rel_pos_h'] == (pytest.approx(LR * DECAY), 0.0)
    assert got['blocks.0.attn.qkv.weight'] == (pytest.approx(LR * DECAY ** 2), WD)
    assert got['neck.0.weight'] == (pytest.approx(LR), WD)
    assert got['neck.1.weight'] == (pytest.approx(LR), 0.0)  # LayerNorm2d


def test_zero_grad_adamw_step_applies_only_the_weight_decay_term():
    model = tiny_hrsam()
    model.head.requires_grad_(False)  # frozen parameters stay out of the optimizer
    optim_wrapper = build(model)
    got = assignment(optim_wrapper, model)
    assert not any(n.startswith('head.') for n in got) and len(got) == len(list(model.backbone.parameters()))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optim_wrapper.step()
    for name, p in model.named_parameters():
        if name in got:
            lr, wd = got[name]
            torch.testing.assert_close(p.detach(), before[name] * (1 - lr * wd), rtol=0, atol=1e-9)
            assert (wd > 0) == (not torch.equal(p, before[name])), name
        else:
            assert torch.equal(p, before[name])


def test_no_decay_flag_and_num_layers_override():
    model = tiny_hrsam()
    model.backbone.lateral_convs[0][0].weight._no_weight_decay = True
    got = assignment(build(model, num_layers=6), model)
    assert got['backbone.lateral_convs.0.0.weight'] == (pytest.approx(LR), 0.0)
    assert got['backbone.blocks.0.attn.qkv.weight'] == (pytest.approx(LR * DECAY ** 6), WD)


def test_rejects_unsupported_options():
    with pytest.raises(ValueError, match='custom_keys'):
        build(tiny_hrsam(), custom_keys={'head': dict(lr_mult=0.1)})
    with pytest.raises(ValueError, match='layer_decay_rate'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=LR)), dict(layer_decay_rate=1.5))


def test_amp_optim_wrapper(monkeypatch):
    """AmpOptimWrapper asserts a GPU at construction; pretend one is there (no step is taken)."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    model = tiny_hrsam()
    with DefaultScope.overwrite_default_scope('mmhrsam'):
        optim_wrapper = build_optim_wrapper(model, optim_cfg(wrapper='AmpOptimWrapper'))
    assert type(optim_wrapper).__name__ == 'AmpOptimWrapper'
    assert len(assignment(optim_wrapper, model)) == len(list(model.parameters()))


def test_found_from_a_fresh_process_by_scope():
    """A fresh `import mmhrsam` (mmhrsam.engine not imported): the constructor is found by
    name under default scope 'mmhrsam' and as 'mmhrsam.<name>' with no default scope."""
    code = textwrap.dedent(f"""
        import sys, torch, mmhrsam
        from mmengine.optim import build_optim_wrapper
        from mmengine.registry import DefaultScope
        assert 'mmhrsam.engine' not in sys.modules
        model = torch.nn.Linear(2, 2)
        model.get_layer_depth = lambda name, prefix='': (1, 2)  # no blocks: everything in the top layer
        cfg = {optim_cfg()!r}
        with DefaultScope.overwrite_default_scope('mmhrsam'):
            a = build_optim_wrapper(model, cfg)
        cfg['constructor'] = 'mmhrsam.LayerDecayOptimWrapperConstructor'
        b = build_optim_wrapper(model, cfg)
        print(len(a.optimizer.param_groups), len(b.optimizer.param_groups))
    """)
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ['2', '2']  # weight (decayed) and bias (not), layer 1
