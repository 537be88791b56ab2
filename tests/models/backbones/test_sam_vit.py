"""SAMViT against segment_anything's ImageEncoderViT."""
from functools import partial

import pytest
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT

from mmhrsam.models.backbones.sam_vit import SAMViT
from mmhrsam.registry import MODELS


def upstream_encoder(img_size):
    """ViT-B image encoder with the arguments of segment_anything's ``_build_sam``."""
    return ImageEncoderViT(depth=12, embed_dim=768, img_size=img_size, mlp_ratio=4,
                           norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=12,
                           patch_size=16, qkv_bias=True, use_rel_pos=True,
                           global_attn_indexes=[2, 5, 8, 11], window_size=14, out_chans=256)


def randomize(module):
    """Non-zero pos/rel-pos embeddings (zero-initialised upstream) so they are exercised."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if 'pos' in name:
                param.normal_(std=0.02)
    return module


@pytest.fixture(scope='module')
def pair():
    torch.manual_seed(0)
    ref = randomize(upstream_encoder(128)).eval()
    ours = SAMViT('vit-b', img_size=128, out_indices=(5, -1)).eval()
    ours.load_state_dict(ref.state_dict())  # strict: identical keys and shapes
    return ref, ours


@torch.no_grad()
def test_equals_upstream(pair):
    ref, ours = pair
    img = torch.randn(1, 3, 128, 128)
    outs = ours(img)
    assert isinstance(outs, tuple) and len(outs) == 3
    assert outs[0].shape == outs[1].shape == (1, 768, 8, 8)
    torch.testing.assert_close(outs[-1], ref(img), rtol=0, atol=0)


@torch.no_grad()
def test_input_size_checks(pair):
    _, ours = pair
    with pytest.raises(ValueError, match='interpolate_pos_embed'):
        ours(torch.randn(1, 3, 160, 128))
    with pytest.raises(ValueError, match='multiple of 16'):
        ours(torch.randn(1, 3, 120, 128))
    ours.interpolate_pos_embed = True
    try:
        assert ours(torch.randn(1, 3, 160, 96))[-1].shape == (1, 256, 10, 6)
    finally:
        ours.interpolate_pos_embed = False


@pytest.mark.parametrize('arch,name', [('vit-b', 'vit_b'), ('vit-l', 'vit_l'), ('vit-h', 'vit_h')])
def test_archs_match_segment_anything_builders(arch, name):
    # Meta tensors: no memory or init time, yet parameter shapes and module configs are real.
    with torch.device('meta'):
        ours = MODELS.build(dict(type='SAMViT', arch=arch))
        ref = sam_model_registry[name]().image_encoder
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in ref.state_dict().items()}
    for child in ('patch_embed', 'blocks', 'neck'):  # same layers, eps, window sizes
        assert repr(getattr(ours, child)) == repr(getattr(ref, child))
    if arch == 'vit-b':
        assert sum(p.numel() for p in ours.parameters()) == 89_670_912


TINY = dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,))


def test_pretrained_init_from_official_layout(tmp_path):
    """An official checkpoint (``image_encoder.*`` keys) loads through init_cfg."""
    ref = randomize(SAMViT(TINY, img_size=64))
    path = tmp_path / 'sam.pth'
    torch.save({f'image_encoder.{k}': v for k, v in ref.state_dict().items()}, path)
    model = SAMViT(TINY, img_size=64,
                   init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='image_encoder.'))
    model.init_weights()
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


def test_bad_arch():
    with pytest.raises(ValueError, match='unknown SAM ViT arch'):
        SAMViT('vit-x')
