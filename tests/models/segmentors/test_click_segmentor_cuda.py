"""Click simulation on CUDA: no host synchronization, and the same distance transforms and
first clicks as on the CPU (the windowed transform is the CUDA default)."""
import numpy as np
import pytest
import torch

import mmhrsam  # noqa: F401
from mmhrsam.ops.distance_transform import squared_distance_transform
from mmhrsam.registry import MODELS
from mmhrsam.structures.click_sampling import sample_click_torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def random_targets(batch, size, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((size, size))
    target = np.zeros((batch, size, size), dtype=bool)
    for b in range(batch):
        for _ in range(3):
            cy, cx, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(4, size // 3))]
            target[b] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return torch.from_numpy(target)


@pytest.mark.parametrize('size', [64, 256, 700])
def test_distance_transform_cuda_equals_cpu(size):
    masks = random_targets(4, size, size)
    expected = squared_distance_transform(masks)  # CPU: offset by offset
    torch.testing.assert_close(squared_distance_transform(masks.cuda()).cpu(), expected, rtol=0, atol=0)


def test_first_clicks_cuda_equal_cpu():
    target = random_targets(4, 256, 1)
    pred = random_targets(4, 256, 2)
    cpu = sample_click_torch(pred, target, first=True)
    gpu = sample_click_torch(pred.cuda(), target.cuda(), first=True)
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=0, atol=0)


def test_simulation_never_synchronizes(tiny_parts):
    """The whole no-grad click loop of a 4 x 256² batch runs without a host sync (what keeps
    the GPU fed, and what a CUDA-graph capture needs)."""
    model = MODELS.build(dict(type='ClickSegmentor', max_sim_iters=4, **tiny_parts)).cuda()
    target = random_targets(4, 256, 3).cuda()
    valid = torch.ones_like(target)
    embeddings = torch.randn(4, 32, 16, 16, device='cuda')
    torch.manual_seed(0)
    num_iters = model.draw_num_iters(4)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        points, labels, prev, prev_valid = model.simulate_clicks(embeddings, target, valid, num_iters)
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert points.shape == (4, 1 + int(num_iters.max()), 2) and labels.is_cuda
