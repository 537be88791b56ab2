"""squared_distance_transform (torch) and its numpy twin against brute force and scipy."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from click_reference import brute_sq_dt, random_mask
from mmhrsam.evaluation import squared_distance_transform, squared_distance_transform_np


def scipy_sq_dt(region: np.ndarray) -> np.ndarray:
    """scipy's float64 EDT of the zero-padded region, squared and rounded back to integers."""
    return np.rint(ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1] ** 2).astype(np.int64)


def test_hand_values_border_counts():
    """A 3x4 all-True image: distances to the virtual ring only."""
    out = squared_distance_transform(torch.ones(1, 3, 4, dtype=torch.bool))
    assert out.dtype == torch.int64
    assert out[0].tolist() == [[1, 1, 1, 1], [1, 4, 4, 1], [1, 1, 1, 1]]


def test_hand_values_hole():
    """One False pixel in a 5x5 image; the centre row (2, *) and corners by hand."""
    mask = torch.ones(1, 5, 5, dtype=torch.bool)
    mask[0, 2, 0] = False
    out = squared_distance_transform(mask)[0]
    assert out[2].tolist() == [0, 1, 4, 4, 1]  # (2,3): hole is 3 away, border 2
    assert out[1, 1].item() == 2  # diagonal to the hole, 2 from the top border
    assert out[0, 0].item() == 1


def test_empty_and_full_batch():
    mask = torch.zeros(3, 6, 7, dtype=torch.bool)
    mask[1] = True
    out = squared_distance_transform(mask)
    assert out[0].eq(0).all() and out[2].eq(0).all()
    assert out[1].max().item() == 9 and out[1, 3, 3].item() == 9  # 6x7: centre rows 2,3 col 3


@pytest.mark.parametrize('method', ['offsets', 'window'])
@pytest.mark.parametrize('seed', range(4))
def test_against_brute_force(seed, method):
    rng = np.random.default_rng(seed)
    for _ in range(15):
        h, w = rng.integers(1, 25, 2)
        masks = np.stack([random_mask(rng, h, w) for _ in range(3)])
        out = squared_distance_transform(torch.from_numpy(masks), method=method).numpy()
        for b in range(3):
            expected = brute_sq_dt(masks[b])
            np.testing.assert_array_equal(out[b], expected)
            np.testing.assert_array_equal(squared_distance_transform_np(masks[b]), expected)


@pytest.mark.parametrize('method', ['offsets', 'window'])
@pytest.mark.parametrize('shape', [(200, 300), (300, 200), (64, 64), (1, 300), (200, 1)])
def test_against_scipy(shape, method):
    rng = np.random.default_rng(sum(shape))
    masks = np.stack([random_mask(rng, *shape) for _ in range(3)])
    masks[0] = True  # one all-object sample: the largest distances, all from the border
    out = squared_distance_transform(torch.from_numpy(masks), method=method).numpy()
    for b in range(3):
        np.testing.assert_array_equal(out[b], scipy_sq_dt(masks[b]))
        np.testing.assert_array_equal(squared_distance_transform_np(masks[b]), out[b])


@pytest.mark.parametrize('method', ['offsets', 'window'])
@pytest.mark.parametrize('chunk', [1, 3, 64])
def test_chunk_size_does_not_change_result(chunk, method):
    yy, xx = np.indices((90, 70))
    disk = (yy - 40) ** 2 + (xx - 30) ** 2 < 33 ** 2
    out = squared_distance_transform(torch.from_numpy(disk)[None], chunk=chunk, method=method)[0].numpy()
    np.testing.assert_array_equal(out, scipy_sq_dt(disk))


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        squared_distance_transform(torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError):
        squared_distance_transform(torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match='method'):
        squared_distance_transform(torch.ones(1, 4, 4, dtype=torch.bool), method='fast')


def test_window_uses_few_kernels_and_syncs():
    """The GPU path's point: a 256² batch in a few chunks (kernel and host-copy counts)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    yy, xx = np.indices((256, 256))
    disks = np.stack([(yy - 128) ** 2 + (xx - 128) ** 2 < r ** 2 for r in (40, 60, 90, 120)])
    copies = []
    original = torch.Tensor.tolist
    with Count(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, 'tolist', lambda t: copies.append(1) or original(t))
        out = squared_distance_transform(torch.from_numpy(disks), method='window').numpy()
    for b in range(4):
        np.testing.assert_array_equal(out[b], scipy_sq_dt(disks[b]))
    # the whole batch fits one window: no host copy at all (offset by offset: ~1000 kernels)
    assert len(copies) == 0 and Count.calls < 60


@pytest.mark.parametrize('budget', [3000, 200000])
def test_window_with_crops_and_small_budget(monkeypatch, budget):
    """Windowed chunks sized by a small element budget: crops, re-crops and, below 8
    offsets per window, the offset-by-offset fallback, all exact."""
    from mmhrsam.ops import distance_transform
    monkeypatch.setattr(distance_transform, 'CHUNK_ELEMENTS', budget)
    rng = np.random.default_rng(budget)
    yy, xx = np.indices((90, 70))
    masks = np.stack([(yy - 40) ** 2 + (xx - 30) ** 2 < 33 ** 2, random_mask(rng, 90, 70),
                      np.zeros((90, 70), dtype=bool)])
    out = squared_distance_transform(torch.from_numpy(masks), method='window').numpy()
    for b in range(3):
        np.testing.assert_array_equal(out[b], scipy_sq_dt(masks[b]))
