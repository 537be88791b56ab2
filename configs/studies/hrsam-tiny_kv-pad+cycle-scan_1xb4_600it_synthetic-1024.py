# Extrapolation study, the full HRSAM token mixer: KV-padded Flash Swin windows + a Cycle-scan
# before each stage's last block (configs/studies/_base_/extrapolation_tiny_synthetic-1024.py;
# docs/extrapolation_study.md).
_base_ = ['./_base_/extrapolation_tiny_synthetic-1024.py']
model = dict(backbone=dict(attn_cfg=dict(type='KVPadSwinAttention', backend='auto'),
                           cycle_scan_cfg=dict(_delete_=True, type='CycleScan', d_state=16, scan_backend='auto')))
