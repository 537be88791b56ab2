"""SAMLightening against references built independently: segment_anything's ImageEncoderViT
for SAM's own blocks, and for dilated blocks the pre-norm block written out with dense
attention masked to same-dilation-group pairs."""
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer

from mmhrsam.models.attention import DilatedAttention
from mmhrsam.models.backbones.sam_lightening import SAM_LIGHTENING_ARCHS, SAMLightening
from mmhrsam.registry import MODELS

TINY = dict(embed_dim=32, depth=3, num_heads=2)


def randomize(module):
    """Non-zero pos / rel-pos embeddings (zero-initialised upstream) so they are exercised."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if 'pos' in name:
                param.normal_(std=0.02)
    return module


def upstream_encoder(img_size, global_attn_indexes):
    return ImageEncoderViT(img_size=img_size, patch_size=16, embed_dim=32, depth=3, num_heads=2, mlp_ratio=4,
                           out_chans=256, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                           use_rel_pos=True, global_attn_indexes=global_attn_indexes, window_size=14)


@torch.no_grad()
def test_sam_blocks_are_segment_anythings():
    torch.manual_seed(0)
    ref = randomize(upstream_encoder(128, (1, ))).eval()
    ours = SAMLightening(dict(TINY, attn_pattern=('window', 'global', 'window')), img_size=128).eval()
    ours.load_state_dict(ref.state_dict())  # strict: SAM's layout
    img = torch.randn(2, 3, 128, 128)
    torch.testing.assert_close(ours(img)[-1], ref(img), rtol=0, atol=0)


def dilated_block_reference(block, x, d):
    """x + attn(LN(x)) with attention masked to same-group pairs, then x + MLP(LN(x)); x (B, h, w, C)."""
    B, h, w, C = x.shape
    heads = 2
    t = block.norm1(x).reshape(B, h * w, C)
    q, k, v = F.linear(t, block.attn.qkv.weight, block.attn.qkv.bias).chunk(3, -1)
    q, k, v = (a.unflatten(-1, (heads, -1)).transpose(1, 2) for a in (q, k, v))
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    group = ((ys % d) * d + xs % d).reshape(-1)
    scores = (q @ k.transpose(-1, -2) / math.sqrt(C // heads)).masked_fill(group[:, None] != group[None, :],
                                                                           float('-inf'))
    attn = F.linear((scores.softmax(-1) @ v).transpose(1, 2).reshape(B, h, w, C), block.attn.proj.weight,
                    block.attn.proj.bias)
    x = x + attn
    return x + block.mlp(block.norm2(x))


@torch.no_grad()
def test_dilated_blocks_follow_the_definition():
    torch.manual_seed(0)
    pattern = (2, 'window', 3)
    ours = randomize(SAMLightening(dict(TINY, attn_pattern=pattern), img_size=160, out_indices=(0, 2))).eval()
    assert isinstance(ours.blocks[0].attn, DilatedAttention) and ours.blocks[0].attn.dilation == 2
    assert ours.blocks[1].window_size == 14 and ours.blocks[2].attn.dilation == 3
    img = torch.randn(2, 3, 160, 160)  # a 10 x 10 grid: not a multiple of 3
    x = ours.patch_embed(img) + ours.pos_embed
    feats = []
    for block, kind in zip(ours.blocks, pattern):
        x = block(x) if kind == 'window' else dilated_block_reference(block, x, kind)  # SAM's block as is
        feats.append(x.permute(0, 3, 1, 2))
    out = ours(img)
    assert len(out) == 3
    torch.testing.assert_close(out[0], feats[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1], feats[2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[2], ours.neck(feats[2]), rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_1024_embedding_feeds_sams_own_decoder_unchanged():
    """64 x 64 x 256 at 1024², decoded by segment_anything's prompt encoder and mask decoder
    as SAM builds them (no adapter)."""
    torch.manual_seed(0)
    encoder = SAMLightening(dict(TINY, depth=2, attn_pattern=(2, 'window'))).eval()
    emb = encoder(torch.randn(1, 3, 1024, 1024))[-1]
    assert emb.shape == (1, 256, 64, 64)
    prompt = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                           mask_in_chans=16)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=256,
                                                                                 mlp_dim=2048, num_heads=8),
                          transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256)
    sparse, dense = prompt(points=(torch.tensor([[[500., 300.]]]), torch.tensor([[1]])), boxes=None, masks=None)
    masks, iou = decoder(emb, prompt.get_dense_pe(), sparse, dense, multimask_output=False)
    assert masks.shape == (1, 1, 256, 256) and torch.isfinite(masks).all()


def test_presets_and_pattern_checks():
    for name, spec in SAM_LIGHTENING_ARCHS.items():
        assert len(spec['attn_pattern']) == spec['depth'], name
    model = MODELS.build(dict(type='SAMLightening', arch=dict(TINY, attn_pattern=(1, 4, 'global')), img_size=64))
    assert [getattr(b.attn, 'dilation', None) for b in model.blocks] == [1, 4, None]
    with pytest.raises(ValueError, match='3 blocks'):
        SAMLightening(dict(TINY, attn_pattern=(2, 2)))
    with pytest.raises(ValueError, match=r'attn_pattern\[1\]'):
        SAMLightening(dict(TINY, attn_pattern=(2, 0, 'window')))
    with pytest.raises(ValueError, match=r'attn_pattern\[2\]'):
        SAMLightening(dict(TINY, attn_pattern=(2, 2, 'swin')))
    with pytest.raises(ValueError, match='lacks'):
        SAMLightening(dict(TINY))
    with pytest.raises(ValueError, match='unknown SAM-Lightening arch'):
        SAMLightening('vit-z')
