# Extrapolation study, global attention (configs/studies/_base_/extrapolation_tiny_synthetic-1024.py
# says what is shared and why the comparison is fair; docs/extrapolation_study.md runs it).
_base_ = ['./_base_/extrapolation_tiny_synthetic-1024.py']
model = dict(backbone=dict(attn_cfg=dict(type='GlobalAttention', backend='auto'), cycle_scan_cfg=None))
