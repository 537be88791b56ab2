# Table 3, row 1: global attention in every block, no Cycle-scan.
_base_ = ['../_base_/models/hrsam_vit-b.py']
model = dict(backbone=dict(attn_cfg=dict(_delete_=True, type='GlobalAttention'), cycle_scan_cfg=None))
