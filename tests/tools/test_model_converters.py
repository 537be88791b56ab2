"""The checkpoint converters of tools/model_converters/ and mmhrsam.utils.checkpoint."""
import argparse
from functools import partial
from pathlib import Path

import pytest
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, Sam
from torch import nn

from mmhrsam.models.backbones.sam_vit import SAMViT
from mmhrsam.models.heads import SAMHead
from mmhrsam.utils.checkpoint import (convert_hrsam_release, convert_mae, convert_sam,
                                      extract_state_dict, rename_keys)
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,))


def load_script(name):
    """Import ``tools/model_converters/<name>.py`` (the tools folder is not a package)."""
    return load_tool(f'tools/model_converters/{name}.py', name)


class Segmentor(nn.Module):
    """Stand-in for the interactive segmentor: the layout the converters target."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head


@pytest.fixture(scope='module')
def sam_vit_b():
    torch.manual_seed(0)
    return sam_model_registry['vit_b']().eval()


@pytest.fixture(scope='module')
def small_sam(sam_vit_b):
    """SAM with the real prompt encoder / mask decoder and a tiny image encoder (fast on CPU)."""
    encoder = ImageEncoderViT(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2, mlp_ratio=4,
                              out_chans=256, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
                              use_rel_pos=True, global_attn_indexes=(1,), window_size=14)
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if 'pos' in name:  # zero-initialised upstream; make them matter
                param.normal_(std=0.02)
    return Sam(encoder, sam_vit_b.prompt_encoder, sam_vit_b.mask_decoder).eval()


def assert_same_tensors(actual, expected):
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=0, msg=key)


# ---------------------------------------------------------------------- SAM
def test_sam_real_builder_loads_strictly(sam_vit_b):
    result = convert_sam(sam_vit_b.state_dict())
    assert not result.dropped and not result.unknown
    model = Segmentor(SAMViT('vit-b'), SAMHead())
    model.load_state_dict(result.state_dict)  # strict
    for key, new_key in result.renamed.items():
        assert new_key == {'image_encoder': 'backbone', 'prompt_encoder': 'head.prompt_encoder',
                           'mask_decoder': 'head.mask_decoder'}[key.split('.')[0]] + key[key.index('.'):]


@torch.no_grad()
def test_sam_cli_outputs_match(tmp_path, small_sam, capsys):
    src, dst = tmp_path / 'sam.pth', tmp_path / 'out' / 'sam_mmhrsam.pth'
    torch.save(small_sam.state_dict(), src)
    load_script('sam_to_mmhrsam').main([str(src), str(dst)])
    assert 'backbone' in capsys.readouterr().out
    model = Segmentor(SAMViT(TINY, img_size=64), SAMHead()).eval()
    model.load_state_dict(torch.load(dst)['state_dict'])  # strict

    img = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model.backbone(img)[-1], small_sam.image_encoder(img), rtol=0, atol=0)
    embedding = torch.randn(1, 256, 64, 64)
    points, labels = torch.tensor([[[100., 200.], [700., 30.]]]), torch.tensor([[1, 0]])
    sparse, dense = small_sam.prompt_encoder(points=(points, labels), boxes=None, masks=None)
    expected = small_sam.mask_decoder(embedding, small_sam.prompt_encoder.get_dense_pe(), sparse, dense,
                                      multimask_output=False)
    for out, ref in zip(model.head(embedding, points, labels), expected):
        torch.testing.assert_close(out, ref, rtol=0, atol=0)

    # MMEngine's Pretrained init reads the converted file (teacher / baseline configs).
    init_cfg = dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.')
    teacher = SAMViT(TINY, img_size=64, init_cfg=init_cfg)
    teacher.init_weights()
    assert_same_tensors(teacher.state_dict(), small_sam.image_encoder.state_dict())


# ---------------------------------------------------------------------- HRSAM release
def release_layout(sam):
    """SAM's prompt encoder / mask decoder under the released HRSAM names (docs/architecture.md)."""
    renames = {'pe_layer.': 'pos_embed_layer.', 'point_embeddings.': 'point_embeds.'}
    state = {}
    for key, value in sam.prompt_encoder.state_dict().items():
        for old, new in renames.items():
            key = new + key[len(old):] if key.startswith(old) else key
        state[f'neck.{key}'] = value
    state.update({f'decode_head.{k}': v for k, v in sam.mask_decoder.state_dict().items()})
    return state


BACKBONE_KEYS = {
    'backbone.patch_embed.proj.weight': (8, 3, 16, 16), 'backbone.pos_embed': (1, 197, 8),
    'backbone.blocks.0.attn.padding': (1, 8), 'backbone.blocks.1.mlp.fc2.bias': (8,),
    'backbone.mamba_blocks.0.As_log': (8, 32), 'backbone.mamba_blocks.0.in_proj.0.weight': (16, 8),
    'backbone.ms_mamba_blocks.1.gamma': (8, 3, 1), 'backbone.multi_scale_fusion.0.0.weight': (4, 16),
    'backbone.lateral_convs.3.1.bias': (4,), 'backbone.out_conv.2.weight': (4,),
}


def released_rope_freqs(head_dim=64, theta=10000):
    """The released RoPE buffer, written from its definition: theta^(-2i / (head_dim/2)) in float32."""
    half = head_dim // 2
    return torch.tensor([theta ** (-2 * i / half) for i in range(half // 2)], dtype=torch.float32)


def test_hrsam_release_cli(tmp_path, sam_vit_b, capsys):
    backbone = {k: torch.randn(shape) for k, shape in BACKBONE_KEYS.items()}
    src, dst = tmp_path / 'hrsam.pth', tmp_path / 'hrsam_mmhrsam.pth'
    released = {**backbone, 'backbone.rope.freqs': released_rope_freqs(), **release_layout(sam_vit_b)}
    torch.save({'state_dict': released, 'meta': {'iter': 160000}}, src)
    result = load_script('hrsam_release_to_mmhrsam').main([str(src), str(dst)])
    converted = torch.load(dst)['state_dict']
    assert result.dropped == ['backbone.rope.freqs'] and not result.unknown
    report = capsys.readouterr().out
    assert 'dropped 1 tensors: backbone.rope.freqs' in report and "equals mmhrsam's axial RoPE" in report

    assert_same_tensors({k: v for k, v in converted.items() if k.startswith('backbone.')}, backbone)
    head = SAMHead()
    head.load_state_dict({k[len('head.'):]: v for k, v in converted.items() if k.startswith('head.')})
    assert_same_tensors(head.prompt_encoder.state_dict(), sam_vit_b.prompt_encoder.state_dict())
    assert_same_tensors(head.mask_decoder.state_dict(), sam_vit_b.mask_decoder.state_dict())


@pytest.mark.parametrize('table,error', [
    (released_rope_freqs(theta=100), 'differs from the frequencies'),      # another RoPE base
    (released_rope_freqs() * (1 + 1e-5), 'differs from the frequencies'),  # beyond float32 rounding
    (released_rope_freqs().view(4, 4), 'expected'),
])
def test_hrsam_release_rejects_another_rope(tmp_path, table, error):
    state = {'backbone.pos_embed': torch.zeros(1), 'backbone.rope.freqs': table}
    with pytest.raises(ValueError, match=error):
        convert_hrsam_release(state)
    src, dst = tmp_path / 'bad_rope.pth', tmp_path / 'out.pth'
    torch.save(state, src)
    with pytest.raises(SystemExit) as exc:
        load_script('hrsam_release_to_mmhrsam').main([str(src), str(dst)])
    assert exc.value.code == 1 and not dst.exists()


def test_hrsam_release_rope_within_float32_rounding():
    """A table one float32 ulp off (another pow implementation) is accepted."""
    table = torch.nextafter(released_rope_freqs(), torch.tensor(1.0))
    assert convert_hrsam_release({'backbone.rope.freqs': table}).dropped == ['backbone.rope.freqs']


def test_unknown_keys(tmp_path):
    state = {'backbone.pos_embed': torch.zeros(1), 'auxiliary_head.conv.weight': torch.zeros(1),
             'neck.lateral.0.weight': torch.zeros(1)}
    with pytest.raises(ValueError, match='auxiliary_head.conv.weight'):
        convert_hrsam_release(state)
    with pytest.warns(UserWarning, match='neck.lateral'):
        result = convert_hrsam_release(state, strict=False)
    assert list(result.state_dict) == ['backbone.pos_embed']
    assert sorted(result.unknown) == ['auxiliary_head.conv.weight', 'neck.lateral.0.weight']

    src = tmp_path / 'bad.pth'
    torch.save(state, src)
    with pytest.raises(SystemExit) as exc:
        load_script('hrsam_release_to_mmhrsam').main([str(src), str(tmp_path / 'out.pth')])
    assert exc.value.code == 1
    with pytest.warns(UserWarning, match='dropping 2 unknown keys'):
        load_script('hrsam_release_to_mmhrsam').main([str(src), str(tmp_path / 'out.pth'), '--no-strict'])


# ---------------------------------------------------------------------- MAE
def expected_hrsam_vit_keys(dim=768, depth=12, tokens=197):
    """Names and shapes of the HRSAM backbone's ViT parts (docs/architecture.md), independent of the converter."""
    shapes = {'patch_embed.proj.weight': (dim, 3, 16, 16), 'patch_embed.proj.bias': (dim,),
              'pos_embed': (1, tokens, dim)}
    per_block = {'norm1.weight': (dim,), 'norm1.bias': (dim,), 'attn.qkv.weight': (3 * dim, dim),
                 'attn.qkv.bias': (3 * dim,), 'attn.proj.weight': (dim, dim), 'attn.proj.bias': (dim,),
                 'norm2.weight': (dim,), 'norm2.bias': (dim,), 'mlp.fc1.weight': (4 * dim, dim),
                 'mlp.fc1.bias': (4 * dim,), 'mlp.fc2.weight': (dim, 4 * dim), 'mlp.fc2.bias': (dim,)}
    for i in range(depth):
        shapes.update({f'blocks.{i}.{k}': v for k, v in per_block.items()})
    return {f'backbone.{k}': v for k, v in shapes.items()}


def test_mae_from_timm():
    timm = pytest.importorskip('timm')
    source = timm.create_model('vit_base_patch16_224', pretrained=False).state_dict()
    result = convert_mae(source)
    assert {k: tuple(v.shape) for k, v in result.state_dict.items()} == expected_hrsam_vit_keys()
    assert sorted(result.dropped) == ['cls_token', 'head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    for key, new_key in result.renamed.items():
        assert result.state_dict[new_key] is source[key]


def mae_release(dim=32, depth=2):
    """A hand-built MAE pre-training checkpoint (encoder + decoder) with small widths."""
    state = {'cls_token': torch.randn(1, 1, dim), 'mask_token': torch.randn(1, 1, dim),
             'norm.weight': torch.randn(dim), 'norm.bias': torch.randn(dim),
             'decoder_pos_embed': torch.randn(1, 197, 16), 'decoder_embed.weight': torch.randn(16, dim),
             'decoder_blocks.0.attn.qkv.weight': torch.randn(48, 16), 'decoder_norm.weight': torch.randn(16),
             'decoder_pred.weight': torch.randn(768, 16)}
    for key, shape in expected_hrsam_vit_keys(dim, depth).items():
        state[key[len('backbone.'):]] = torch.randn(shape)
    return state


def test_mae_cli_with_training_checkpoint(tmp_path):
    state = mae_release()
    src, dst = tmp_path / 'mae.pth', tmp_path / 'mae_hrsam.pth'
    torch.save({'model': state, 'epoch': 799, 'args': argparse.Namespace(model='mae_vit_base')}, src)
    script = load_script('mae_to_mmhrsam')
    with pytest.raises(RuntimeError, match='allow-pickle'):
        script.main([str(src), str(dst)])
    result = script.main([str(src), str(dst), '--allow-pickle'])
    converted = torch.load(dst)['state_dict']
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected_hrsam_vit_keys(32, 2)
    assert set(result.dropped) == {'cls_token', 'mask_token', 'norm.weight', 'norm.bias', 'decoder_pos_embed',
                                   'decoder_embed.weight', 'decoder_blocks.0.attn.qkv.weight',
                                   'decoder_norm.weight', 'decoder_pred.weight'}


def test_mae_rejects_other_layouts():
    with pytest.raises(ValueError, match='class-token slot'):
        convert_mae({'pos_embed': torch.zeros(1, 196, 8)})
    with pytest.raises(ValueError, match=r'blocks\.0\.attn\.q_bias'):
        convert_mae({'blocks.0.attn.q_bias': torch.zeros(8)})  # BEiT-style ViT


def test_mae_keys_fit_hrsam_backbone():
    """When the HRSAM backbone is registered, the converted keys are a subset of its own."""
    from mmhrsam.registry import MODELS
    if MODELS.get('HRSAM') is None:
        pytest.skip('HRSAM backbone not registered yet')
    with torch.device('meta'):
        backbone = MODELS.build(dict(type='HRSAM'))
    own = {f'backbone.{k}': tuple(v.shape) for k, v in backbone.state_dict().items()}
    for key, shape in expected_hrsam_vit_keys().items():
        assert own.get(key) == shape, key


# ---------------------------------------------------------------------- helpers
def test_extract_state_dict_unwraps():
    weights = {'module.a': torch.zeros(1)}
    assert list(extract_state_dict({'state_dict': weights, 'meta': {}})) == ['a']
    assert list(extract_state_dict({'model': {'b': torch.zeros(1)}})) == ['b']
    with pytest.raises(ValueError, match='not a state dict'):
        extract_state_dict({'epoch': 3, 'w': torch.zeros(1)})


def test_rename_rejects_collisions():
    with pytest.raises(ValueError, match='two source keys'):
        rename_keys({'a.x': torch.zeros(1), 'b.x': torch.zeros(1)}, [(r'[ab]\.(x)', r'\1')])
