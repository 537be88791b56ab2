"""Index maps of FLA against hand-worked cases, the paper's listings (transcribed here
independently) and coordinate-level definitions of the windows."""
import pytest
import torch

from mmhrsam.ops.attention import (concat_partitions, dilated_partition, global_partition,
                                      multi_scale_partition, window_partition)


# ----------------------------------------------------------------------------- listings
def listing1_shift_window(h, w, k, INF=10 ** 9):
    """Paper Listing 1, transcribed (valid when h, w are multiples of k)."""
    hs = torch.arange(0 - k // 2, h + k // 2)
    ws = torch.arange(0 - k // 2, w + k // 2)
    hs[:k // 2] = -INF
    hs[-k // 2:] = -INF
    ws[:k // 2] = -INF
    ws[-k // 2:] = -INF
    ys, xs = torch.meshgrid(hs, ws, indexing='ij')
    coords = ys * w + xs
    coords = coords.reshape((h + k) // k, k, (w + k) // k, k).permute(0, 2, 1, 3).reshape(-1, k * k)
    lengths = (coords >= 0).sum(dim=-1).tolist()
    indices = coords.reshape(-1)
    indices = indices[indices >= 0]
    return indices, lengths, indices.argsort()


def listing2_kv_padding(h, w, k, INF=10 ** 9):
    """Paper Listing 2, transcribed."""
    hs = torch.arange(0 - k // 2, h + k // 2)
    ws = torch.arange(0 - k // 2, w + k // 2)
    hs[:k // 2] = -INF
    hs[-k // 2:] = -INF
    ws[:k // 2] = -INF
    ws[-k // 2:] = -INF
    ys, xs = torch.meshgrid(hs, ws, indexing='ij')
    coords = ys * w + xs
    coords = coords.reshape((h + k) // k, k, (w + k) // k, k).permute(0, 2, 1, 3)
    indices = coords.reshape(-1)
    lengths = ((h + k) * (w + k)) // k ** 2 * [k ** 2]
    indices[indices < 0] = h * w
    return indices, lengths


@pytest.mark.parametrize('h,w,k', [(4, 4, 2), (8, 12, 4), (16, 16, 8), (32, 16, 16)])
def test_shift_window_matches_listing1(h, w, k):
    ref_idx, ref_len, ref_inv = listing1_shift_window(h, w, k)
    part = window_partition(h, w, k, k // 2)
    assert torch.equal(part.q_index, ref_idx)
    assert list(part.q_lengths) == ref_len
    assert torch.equal(part.inverse, ref_inv)
    assert torch.equal(part.kv_index, part.q_index)


@pytest.mark.parametrize('h,w,k', [(4, 4, 2), (8, 12, 4), (16, 16, 8)])
def test_kv_padding_matches_listing2(h, w, k):
    ref_idx, ref_len = listing2_kv_padding(h, w, k)
    part = window_partition(h, w, k, k // 2, kv_padding=True)
    assert torch.equal(part.kv_index, ref_idx)
    assert list(part.kv_lengths) == ref_len
    q_idx, q_len, _ = listing1_shift_window(h, w, k)
    assert torch.equal(part.q_index, q_idx) and list(part.q_lengths) == q_len


def test_multi_scale_matches_listings3_and_4():
    h, w, hs, ws, k = 8, 12, 4, 4, 2
    # Listing 3
    a, la, _ = listing1_shift_window(h, w, k)
    b, lb, _ = listing1_shift_window(hs, ws, k)
    idx = torch.cat([a, b + h * w])
    part = multi_scale_partition('window', ((h, w), (hs, ws)), window_size=k, shift_size=k // 2)
    assert torch.equal(part.q_index, idx) and list(part.q_lengths) == la + lb
    assert torch.equal(part.inverse, idx.argsort())
    # Listing 4: one shared pad token after all tokens
    a, la = listing2_kv_padding(h, w, k)
    b, lb = listing2_kv_padding(hs, ws, k)
    last = h * w + hs * ws
    a[a == h * w] = last
    idx = torch.cat([a, b + h * w])
    part = multi_scale_partition('window', ((h, w), (hs, ws)), window_size=k, shift_size=k // 2,
                                 kv_padding=True)
    assert torch.equal(part.kv_index, idx) and list(part.kv_lengths) == la + lb
    assert part.num_tokens == last


# ----------------------------------------------------------------------------- hand-worked
def test_figure6_hand_worked_4x4_grid():
    """Paper Figure 6: a 4x4 grid, windows of 2 shifted by 1, pad token 17 (1-based)."""
    part = window_partition(4, 4, 2, 1, kv_padding=True)
    one_based = (part.kv_index + 1).tolist()
    assert one_based == [17, 17, 17, 1, 17, 17, 2, 3, 17, 17, 4, 17,
                         17, 5, 17, 9, 6, 7, 10, 11, 8, 17, 12, 17,
                         17, 13, 17, 17, 14, 15, 17, 17, 16, 17, 17, 17]
    # Figure 4: the Flash Swin order of the same grid and its unequal groups
    assert (part.q_index + 1).tolist() == [1, 2, 3, 4, 5, 9, 6, 7, 10, 11, 8, 12, 13, 14, 15, 16]
    assert part.q_lengths == (1, 2, 1, 2, 4, 2, 1, 2, 1)
    # every key slot's position on the 6x6 padded grid, window by window
    assert part.kv_pos[:4].tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert part.kv_pos[-1].tolist() == [5, 5]


def test_non_shift_windows_on_a_non_multiple_grid():
    # 3x5 grid, windows of 2: the bottom row and right column form smaller windows
    part = window_partition(3, 5, 2, 0)
    assert part.q_index.tolist() == [0, 1, 5, 6, 2, 3, 7, 8, 4, 9, 10, 11, 12, 13, 14]
    assert part.q_lengths == (4, 4, 2, 2, 2, 1)
    padded = window_partition(3, 5, 2, 0, kv_padding=True)
    assert padded.kv_lengths == (4,) * 6
    assert padded.kv_index[-4:].tolist() == [14, 15, 15, 15]  # corner window: token 14 + 3 pad slots


# ----------------------------------------------------------------------------- properties
GRIDS = [(1, 1), (3, 5), (7, 7), (8, 8), (9, 20), (16, 13), (33, 17)]


def window_of(h, w, k, s):
    """Window id of every raster token, from coordinates: which k-block of (y+s, x+s)."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    return (((ys + s) // k) * 10_000 + (xs + s) // k).reshape(-1)


@pytest.mark.parametrize('h,w', GRIDS)
@pytest.mark.parametrize('k,s', [(4, 0), (4, 2), (8, 4), (5, 2)])
def test_window_partition_groups_are_the_windows(h, w, k, s):
    part = window_partition(h, w, k, s)
    n = h * w
    assert part.num_tokens == n
    assert torch.equal(torch.sort(part.q_index).values, torch.arange(n))  # a permutation
    x = torch.randn(n, 3)
    assert torch.equal(x[part.q_index][part.inverse], x)
    assert sum(part.q_lengths) == n and all(length > 0 for length in part.q_lengths)
    wid = window_of(h, w, k, s)[part.q_index]
    groups = wid.split(list(part.q_lengths))
    assert all((g == g[0]).all() for g in groups)  # one window per group
    assert len({int(g[0]) for g in groups}) == len(groups) == len(set(wid.tolist()))  # each window once
    # positions: padded-grid coordinates = grid coordinates + shift
    ys, xs = part.q_index // w, part.q_index % w
    assert torch.equal(part.q_pos, torch.stack([ys + s, xs + s], -1).float())


@pytest.mark.parametrize('h,w', GRIDS)
@pytest.mark.parametrize('k,s', [(4, 0), (4, 2), (8, 4)])
def test_kv_padding_fills_every_window_to_k_squared(h, w, k, s):
    part = window_partition(h, w, k, s, kv_padding=True)
    assert set(part.kv_lengths) == {k * k}
    kv = part.kv_index.view(-1, k * k)
    for g, (q_len, q_grp) in enumerate(zip(part.q_lengths, part.q_index.split(list(part.q_lengths)))):
        real = kv[g][kv[g] != h * w]
        assert torch.equal(torch.sort(real).values, torch.sort(q_grp).values)
        assert (kv[g] == h * w).sum() == k * k - q_len
    # the derived views used by the layer point at the same tokens
    is_pad = part.kv_index == h * w
    assert torch.equal(part.pad_slots, torch.nonzero(is_pad).flatten())
    assert torch.equal(part.q_index[part.kv_source_in_q_order][~is_pad], part.kv_index[~is_pad])
    assert torch.equal(part.kv_index[part.slot_of_token], torch.arange(h * w))
    assert part.slot_overhead == pytest.approx(kv.numel() / (h * w) - 1)


def test_shifted_group_sizes_on_multiples():
    # m x m windows of k, shift k/2: 4 corners (s*s), 4(m-1) edges (s*k), (m-1)^2 interior (k*k)
    k, m = 4, 3
    part = window_partition(m * k, m * k, k, k // 2)
    sizes = sorted(part.q_lengths)
    assert sizes == sorted([4] * 4 + [8] * (4 * (m - 1)) + [16] * (m - 1) ** 2)


@pytest.mark.parametrize('h,w,d', [(8, 8, 2), (7, 9, 3), (2, 2, 4), (5, 1, 2)])
def test_dilated_partition(h, w, d):
    part = dilated_partition(h, w, d)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    gid = ((ys % d) * d + xs % d).reshape(-1)[part.q_index]
    groups = gid.split(list(part.q_lengths))
    assert all((g == g[0]).all() for g in groups)
    assert len(groups) == len(set(gid.tolist()))
    assert torch.equal(torch.sort(part.q_index).values, torch.arange(h * w))


def test_global_partition_is_identity():
    part = global_partition(5, 7)
    assert part.is_identity and part.q_lengths == (35,)
    assert not window_partition(8, 8, 4, 0).is_identity


def test_bucketed_keeps_groups_and_sorts_by_size():
    part = window_partition(13, 10, 4, 2)
    b = part.bucketed()
    assert sorted(b.q_lengths, reverse=True) == list(b.q_lengths)
    as_sets = lambda p: sorted(tuple(sorted(g.tolist())) for g in p.q_index.split(list(p.q_lengths)))  # noqa: E731
    assert as_sets(b) == as_sets(part)
    assert len(b.buckets) == len(set(part.q_lengths))
    assert sum(n * lq for n, lq, _ in b.buckets) == part.num_tokens
    # positions travel with their tokens
    assert torch.equal(b.q_pos, torch.stack([b.q_index // 10 + 2, b.q_index % 10 + 2], -1).float())


def test_concat_shares_one_pad_token():
    a = window_partition(4, 4, 2, 1, kv_padding=True)
    b = window_partition(2, 2, 2, 1, kv_padding=True)
    c = concat_partitions([a, b])
    assert c.num_tokens == 20
    assert int((c.kv_index == 20).sum()) == int((a.kv_index == 16).sum() + (b.kv_index == 4).sum())
    assert c.kv_index.max() == 20


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='shift_size'):
        window_partition(8, 8, 4, 4)
    with pytest.raises(ValueError, match='at least 1x1'):
        window_partition(0, 8, 4, 0)
    with pytest.raises(ValueError, match='dilation'):
        dilated_partition(4, 4, 0)


def test_partitions_are_cached_per_device():
    assert window_partition(8, 8, 4, 2) is window_partition(8, 8, 4, 2)
    assert window_partition(8, 8, 4, 2, device='meta') is not window_partition(8, 8, 4, 2)
    assert window_partition(8, 8, 4, 2, device='meta').q_index.device.type == 'meta'
