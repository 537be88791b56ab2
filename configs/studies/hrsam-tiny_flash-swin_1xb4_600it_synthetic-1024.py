# Extrapolation study, Flash Swin windows (16², shift 0 / 8 alternating), no Cycle-scan
# (configs/studies/_base_/extrapolation_tiny_synthetic-1024.py; docs/extrapolation_study.md).
_base_ = ['./_base_/extrapolation_tiny_synthetic-1024.py']
model = dict(backbone=dict(attn_cfg=dict(type='FlashSwinAttention', backend='auto'), cycle_scan_cfg=None))
