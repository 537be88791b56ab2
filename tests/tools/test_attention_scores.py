"""tools/analysis/attention_scores.py against attention matrices computed here by hand.

A tiny HRSAM (2 blocks, width 32, 2 heads, window 4: block 0 non-shifted, block 1 shifted by
2) on 64² and 112² inputs (4x4 and 7x7 tokens; KV-only padding then takes both its per-group
and its slot layout). The reference projects each block's input with the block's ``qkv``
weights, rotates q and k with axial RoPE written out from its definition
(docs/architecture.md; theta 10000, positions 0.5 x (row, col), the first half of each head
by the row, the second by the column), and for every token takes the softmax over exactly
the keys its variant lets it see, in float64:

* global: every token;
* windows (Flash / Plain Swin): k x k windows tiling the grid from row and column -shift,
  the real tokens of the token's window (Plain Swin's rolled windows are the same windows
  here because the window divides 2 x shift; docs/architecture.md, "Flash Swin and Plain
  Swin: when they coincide");
* KV-only padding: those plus, for each window slot outside the grid, the pad token's key
  rotated at that slot's position;
* dilated: the tokens whose row and column agree with the token's modulo the dilation.
"""
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmhrsam  # noqa: F401
from mmhrsam.models.attention import observe_attention
from mmhrsam.registry import MODELS
from tool_loader import load_tool

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
tool = load_tool('tools/analysis/attention_scores.py', 'attention_scores')

WIDTH, HEADS, WINDOW = 32, 2, 4


def tiny_model(attn_cfg, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='InteractiveSAM',
        backbone=dict(type='HRSAM', embed_dim=WIDTH, depth=2, num_heads=HEADS, num_stages=1, window_size=WINDOW,
                      attn_cfg=attn_cfg, cycle_scan_cfg=None, pretrain_grid=4, out_channels=WIDTH),
        head=dict(type='SAMHead', embed_dim=WIDTH, image_size=64, decoder_mlp_dim=64, decoder_num_heads=2,
                  iou_head_hidden_dim=WIDTH)))
    with torch.no_grad():  # a non-trivial pad token and scores far from uniform
        for p in model.backbone.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def rope(t, pos, pos_scale=0.5, theta=10000.0):
    """Axial RoPE of (N, heads, d) vectors at grid positions pos (N, 2) = (row, col), float64."""
    d = t.shape[-1]
    half = d // 2
    freqs = torch.tensor(theta ** (-np.arange(0, half, 2) / half))  # d // 4 frequencies, one per channel pair
    out = t.clone()
    for offset, coord in ((0, pos[:, 0]), (half, pos[:, 1])):
        angle = pos_scale * coord.double()[:, None, None] * freqs  # (N, 1, d // 4)
        x0, x1 = t[..., offset:offset + half:2], t[..., offset + 1:offset + half:2]
        out[..., offset:offset + half:2] = x0 * angle.cos() + x1 * angle.sin()
        out[..., offset + 1:offset + half:2] = x1 * angle.cos() - x0 * angle.sin()
    return out


def visible_keys(attn, r, c, h, w):
    """(real tokens, virtual window slots) a token at (r, c) attends to, by the variant's rule."""
    kind = type(attn).__name__
    cells = [(y, x) for y in range(h) for x in range(w)]
    if kind == 'GlobalAttention':
        return cells, []
    if kind == 'DilatedAttention':
        dil = attn.dilation
        return [(y, x) for y, x in cells if y % dil == r % dil and x % dil == c % dil], []
    k, s = attn.window_size, attn.shift_size
    y0, x0 = (r + s) // k * k - s, (c + s) // k * k - s
    slots = [(y, x) for y in range(y0, y0 + k) for x in range(x0, x0 + k)]
    real = [(y, x) for y, x in slots if 0 <= y < h and 0 <= x < w]
    virtual = [(y, x) for y, x in slots if not (0 <= y < h and 0 <= x < w)]
    return real, (virtual if kind == 'KVPadSwinAttention' else [])


def reference_top1(attn, x, h, w):
    """(heads, h*w) top-1 softmax weights of one layer on its input x (1, h*w, C)."""
    wt, bias = attn.qkv.weight.double(), attn.qkv.bias.double()
    q, k, _ = F.linear(x[0].double(), wt, bias).unflatten(-1, (3, HEADS, -1)).unbind(1)  # (L, heads, d)
    pad_k = None
    if attn.padding is not None:
        pad_k = F.linear(attn.padding.double(), wt, bias).unflatten(-1, (3, HEADS, -1))[0, 1]
    grid = torch.tensor([(r, c) for r in range(h) for c in range(w)])
    q, k = rope(q, grid), rope(k, grid)
    out = torch.empty(HEADS, h * w, dtype=torch.float64)
    for r in range(h):
        for c in range(w):
            real, virtual = visible_keys(attn, r, c, h, w)
            keys = k[[y * w + xx for y, xx in real]]  # (n, heads, d)
            if virtual:
                keys = torch.cat([keys, rope(pad_k.expand(len(virtual), -1, -1), torch.tensor(virtual))])
            scores = torch.einsum('hd,nhd->hn', q[r * w + c], keys) / math.sqrt(WIDTH // HEADS)
            out[:, r * w + c] = scores.softmax(-1).max(-1).values
    return out


VARIANTS = {
    'global': dict(type='GlobalAttention'),
    'flash-swin': dict(type='FlashSwinAttention'),
    'kv-pad': dict(type='KVPadSwinAttention'),
    'plain-swin': dict(type='PlainSwinAttention'),
    'dilated': dict(type='DilatedAttention', dilation=2),
}


@pytest.mark.parametrize('size', [64, 112])
@pytest.mark.parametrize('variant', list(VARIANTS))
def test_top1_scores_equal_hand_computed_attention(variant, size):
    model = tiny_model(VARIANTS[variant])
    h = w = size // 16
    inputs = {}
    hooks = [blk.attn.register_forward_pre_hook(lambda m, args, i=i: inputs.__setitem__(i, args[0].detach()))
             for i, blk in enumerate(model.backbone.blocks)]
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    # a tiny chunk budget on the small grid forces query chunking of the larger groups
    scores = tool.collect_top1(model, x, max_elements=7 if size == 64 else 2 ** 20)
    for hook in hooks:
        hook.remove()
    assert list(scores) == ['backbone.blocks.0.attn', 'backbone.blocks.1.attn']
    for i, blk in enumerate(model.backbone.blocks):
        expected = reference_top1(blk.attn, inputs[i], h, w)
        got = scores[f'backbone.blocks.{i}.attn'][0].double()
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5, rtol=0), (i, (got - expected).abs().max())


def test_observing_leaves_the_output_unchanged():
    model = tiny_model(VARIANTS['kv-pad'])
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        plain = model.extract_feat(x)
        with observe_attention(model, lambda name, inputs: None) as names:
            observed = model.extract_feat(x)
    assert len(names) == 2 and torch.equal(plain, observed)
    assert all(blk.attn.attention_observer is None for blk in model.backbone.blocks)


def test_observing_needs_attention_layers_and_one_observer_at_a_time():
    with pytest.raises(ValueError, match='no FlexibleLocalAttention'):
        with observe_attention(torch.nn.Linear(2, 2), lambda name, inputs: None):
            pass
    model = tiny_model(VARIANTS['global'])
    with observe_attention(model, lambda name, inputs: None):
        with pytest.raises(RuntimeError, match='already observed'):
            with observe_attention(model, lambda name, inputs: None):
                pass


def test_summary_statistics_match_numpy():
    values = np.array([0.01, 0.5, 0.5, 1.0, np.nan], dtype=np.float32)
    res = tool.summarize(values)
    assert res['count'] == 4 and res['mean'] == pytest.approx(0.5025, abs=1e-6)
    assert res['q50'] == pytest.approx(0.5) and sum(res['histogram']) == 4
    assert res['histogram'][-1] == 1  # 1.0 falls in the last bin, [10^-0.05, 1]


def test_command_line_writes_json_png_and_table(tmp_path, capsys):
    config = tmp_path / 'tiny.py'
    config.write_text(
        "model = dict(type='InteractiveSAM', backbone=dict(type='HRSAM', embed_dim=32, depth=2, num_heads=2, "
        "num_stages=1, window_size=4, attn_cfg=dict(type='KVPadSwinAttention'), cycle_scan_cfg=None, "
        "pretrain_grid=4, out_channels=32), head=dict(type='SAMHead', embed_dim=32, image_size=64, "
        "decoder_mlp_dim=64, decoder_num_heads=2, iou_head_hidden_dim=32))\n")
    summary = tool.main([str(config), '--sizes', '64', '96', '--images', '2', '--random-input', '--device', 'cpu',
                         '--out', str(tmp_path / 'out')])
    assert (tmp_path / 'out' / 'attention_scores.png').read_bytes()[:4] == b'\x89PNG'
    assert set(summary['results']) == {'64', '96'}
    # 2 images x 2 heads x 16 (64²) or 36 (96²) tokens per layer
    assert summary['results']['64']['backbone.blocks.0.attn']['count'] == 2 * 2 * 16
    assert summary['results']['96']['backbone.blocks.1.attn']['count'] == 2 * 2 * 36
    assert 'mean top-1 attention score' in capsys.readouterr().out
