"""The predictor on CUDA (skipped elsewhere): same clicks, same masks as on the CPU."""
import numpy as np
import pytest
import torch

from mmhrsam.apis import HRSAMPredictor
from mmhrsam.registry import MODELS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def test_cuda_predictor_matches_cpu():
    torch.manual_seed(0)
    backbone = MODELS.build(dict(type='HRSAM', embed_dim=128, depth=4, num_heads=4, num_stages=2,
                                 cycle_scan_cfg=dict(type='CycleScan', d_state=16)))
    head = MODELS.build(dict(type='SAMHead'))
    rng = np.random.default_rng(0)
    image = (rng.random((300, 420, 3)) * 255).astype(np.uint8)
    clicks = [(np.array([[200, 150]]), np.array([1])),
              (np.array([[200, 150], [50, 40]]), np.array([1, 0]))]
    results = []
    for device in ('cpu', 'cuda'):
        # the eager fp32 path on both devices (the fast path is tested in test_fast_paths.py)
        eager = dict(precision='fp32', compile=False, cuda_graph=False) if device == 'cuda' else {}
        predictor = HRSAMPredictor(backbone.to(device), head.to(device), target_size=512, device=device, **eager)
        predictor.set_image(image)
        logits, outs = None, []
        for points, labels in clicks:
            mask, logits, score = predictor.predict(points, labels, prev_logits=logits)
            assert logits.device.type == device
            outs.append((mask, score))
        results.append(outs)
    for (m_cpu, s_cpu), (m_gpu, s_gpu) in zip(*results):
        assert m_cpu.shape == m_gpu.shape == (300, 420)
        assert (m_cpu != m_gpu).mean() < 1e-3  # TF32 / kernel differences flip a few boundary pixels
        assert abs(s_cpu - s_gpu) < 1e-2
