"""Backends against each other's definition: the block structure each one is given, and
their outputs on unequal groups (the reference loop is checked in test_variants.py)."""
import pytest
import torch
import torch.nn.functional as F

from mmhrsam.ops.attention import available_backends, block_diagonal_attention, window_partition
from mmhrsam.ops.attention.kernels import flex_block_mask, group_ids, xformers_block_mask


def allowed_pairs(part, batch):
    """(B*Lq, B*Lkv) bool: query i may see key j iff same sample and same group."""
    q_grp = torch.cat([group_ids(part.q_lengths, 'cpu') + b * part.num_groups for b in range(batch)])
    kv_grp = torch.cat([group_ids(part.kv_lengths, 'cpu') + b * part.num_groups for b in range(batch)])
    return q_grp[:, None] == kv_grp[None, :]


@pytest.mark.parametrize('kv_padding', [False, True])
@pytest.mark.parametrize('batch', [1, 5])
def test_xformers_mask_is_block_diagonal_per_sample(kv_padding, batch):
    pytest.importorskip('xformers.ops.fmha.attn_bias')
    part = window_partition(7, 9, 4, 2, kv_padding=kv_padding).bucketed()
    mask = xformers_block_mask(part, batch)
    lq, lk = batch * part.q_index.numel(), batch * part.kv_index.numel()
    dense = mask.materialize((lq, lk))
    expected = allowed_pairs(part, batch)
    assert torch.equal(dense == 0, expected)
    assert torch.isinf(dense[~expected]).all()
    # the materialized mask drives a dense SDPA to the reference result
    torch.manual_seed(0)
    H, d = 2, 8
    q = torch.randn(batch, part.q_index.numel(), H, d)
    k, v = (torch.randn(batch, part.kv_index.numel(), H, d) for _ in range(2))
    flat = lambda t: t.reshape(1, -1, H, d).transpose(1, 2)  # noqa: E731
    out = F.scaled_dot_product_attention(flat(q), flat(k), flat(v), attn_mask=dense, scale=0.3)
    ref = block_diagonal_attention(q, k, v, part, 0.3, backend='reference')
    torch.testing.assert_close(out.transpose(1, 2).reshape_as(q), ref, rtol=1e-5, atol=1e-5)


def test_flex_block_mask_matches_groups():
    part = window_partition(9, 6, 4, 2, kv_padding=True).bucketed()
    bm = flex_block_mask(part, 'cpu')
    assert flex_block_mask(part, 'cpu') is bm  # cached per partition and device
    lq, lk = part.q_index.numel(), part.kv_index.numel()
    from torch.nn.attention.flex_attention import create_mask
    dense = create_mask(bm.mask_mod, 1, 1, lq, lk, device='cpu')[0, 0]
    assert torch.equal(dense, allowed_pairs(part, 1))


@pytest.mark.parametrize('backend', available_backends('cpu'))
def test_backends_agree_on_unequal_groups_in_half_precision(backend):
    part = window_partition(11, 13, 4, 2).bucketed()
    torch.manual_seed(1)
    q, k, v = (torch.randn(3, part.num_tokens, 2, 16, dtype=torch.bfloat16) for _ in range(3))
    with torch.no_grad():
        out = block_diagonal_attention(q, k, v, part, 0.25, backend=backend)
    ref = block_diagonal_attention(q.double(), k.double(), v.double(), part, 0.25, backend='reference')
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref, rtol=2e-2, atol=2e-2)


def test_sdpa_issues_one_call_per_group_size(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def spy(q, *a, **kw):
        calls.append(tuple(q.shape))
        return real(q, *a, **kw)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    flash = window_partition(16, 16, 8, 4).bucketed()   # corners 16, edges 32, interior 64
    padded = window_partition(16, 16, 8, 4, kv_padding=True).bucketed()
    q = torch.randn(2, 256, 1, 8)
    block_diagonal_attention(q, q, q, flash, 1.0, backend='sdpa')
    assert sorted(c[-2] for c in calls) == [16, 32, 64]
    calls.clear()
    kv = torch.randn(2, padded.kv_index.numel(), 1, 8)
    block_diagonal_attention(q, kv, kv, padded, 1.0, backend='sdpa')
    assert len(calls) == 3  # queries still come in three sizes, keys always 64
