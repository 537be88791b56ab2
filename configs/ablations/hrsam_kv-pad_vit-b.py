# Table 3, row 3: Flash Swin + KV-only padding, no Cycle-scan.
_base_ = ['../_base_/models/hrsam_vit-b.py']
model = dict(backbone=dict(cycle_scan_cfg=None))
