"""Shared pieces of the OpenMMLab interop tests: a tiny HRSAM that keeps a CPU training step
at a few seconds."""
import pytest

#: HRSAM overrides for fast tests: four stages of one block each, 32 channels, 4x4 windows.
TINY_HRSAM = dict(embed_dim=32, depth=4, num_heads=2, num_stages=4, window_size=4, out_channels=32,
                  pretrain_grid=4, cycle_scan_cfg=dict(type='CycleScan', d_state=4))
#: HRSAM++ on top: a 64² anchor image (4x4 tokens) and small multi-scale scans.
TINY_HRSAM_PLUSPLUS = dict(TINY_HRSAM, anchor_size=64, ms_cycle_scan_cfg=dict(type='MultiScaleCycleScan', d_state=4))


def _shrink(backbone_cfg) -> int:
    plusplus = backbone_cfg.type.endswith('HRSAMPlusPlus')
    backbone_cfg.update(TINY_HRSAM_PLUSPLUS if plusplus else TINY_HRSAM)
    if backbone_cfg.get('out_indices') is None:
        return TINY_HRSAM['out_channels']  # the fused embedding
    return TINY_HRSAM['embed_dim'] * (2 if plusplus else 1)  # HRSAM++ stages: main + anchor


@pytest.fixture
def tiny_backbone():
    """Shrink an HRSAM / HRSAM++ backbone config in place; returns its output channels."""
    return _shrink
