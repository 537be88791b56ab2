# Table 3, row 3: Flash Swin + KV-only padding, no Cycle-scan; distillation protocol.
_base_ = ['../hrsam/hrsam_kv-pad_4xb1_160k_sam-distill-1024.py']
model = dict(backbone=dict(cycle_scan_cfg=None))
