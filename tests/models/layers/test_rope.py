"""Axial RoPE against hand-computed rotations (docs/architecture.md)."""
import math

import torch

from mmhrsam.models.layers import AxialRoPE


def test_rope_matches_hand_computed_rotation():
    rope = AxialRoPE(head_dim=8, pos_scale=0.5)
    # head_dim 8: frequencies 10000^(-2i/4), i = 0, 1 -> (1, 0.01); channels 0-3 row, 4-7 column
    x = torch.arange(1., 9.).view(1, 1, 1, 8)
    pos = torch.tensor([[2., 6.]])
    out = rope(x, pos)[0, 0, 0]
    ang = [0.5 * 2 * 1, 0.5 * 2 * 0.01, 0.5 * 6 * 1, 0.5 * 6 * 0.01]
    expected = []
    for i, a in enumerate(ang):
        x0, x1 = float(x[0, 0, 0, 2 * i]), float(x[0, 0, 0, 2 * i + 1])
        # pair (x0, x1) -> x*cos + (x1, -x0)*sin
        expected += [x0 * math.cos(a) + x1 * math.sin(a), x1 * math.cos(a) - x0 * math.sin(a)]
    torch.testing.assert_close(out, torch.tensor(expected), rtol=1e-6, atol=1e-6)


def test_rope_scores_depend_on_relative_position_only():
    rope = AxialRoPE(head_dim=64)
    q, k = torch.randn(1, 1, 1, 64), torch.randn(1, 1, 1, 64)

    def score(pq, pk):
        return (rope(q, torch.tensor([pq])) * rope(k, torch.tensor([pk]))).sum()

    torch.testing.assert_close(score([3., 5.], [1., 9.]), score([103., 55.], [101., 59.]), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(score([3., 5.], [1., 9.]), score([3., 5.], [2., 9.]))


def test_rope_keeps_half_precision():
    rope = AxialRoPE(head_dim=64)
    x = torch.randn(2, 10, 3, 64, dtype=torch.bfloat16)
    pos = torch.rand(10, 2) * 100
    out = rope(x, pos)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), rope(x.float(), pos), rtol=2e-2, atol=2e-2)
