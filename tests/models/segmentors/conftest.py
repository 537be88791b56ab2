import pytest

TINY_BACKBONE = dict(type='HRSAM', embed_dim=32, depth=2, num_heads=2, num_stages=1, window_size=4,
                     attn_cfg=dict(type='KVPadSwinAttention', backend='sdpa'),
                     cycle_scan_cfg=dict(type='CycleScan', d_state=4, scan_backend='chunked'),
                     pretrain_grid=4, out_channels=32)
TINY_HEAD = dict(type='SAMHead', embed_dim=32, image_size=64, decoder_mlp_dim=64, decoder_num_heads=2,
                 iou_head_hidden_dim=32)


@pytest.fixture
def tiny_parts():
    return dict(backbone=dict(TINY_BACKBONE), head=dict(TINY_HEAD))
