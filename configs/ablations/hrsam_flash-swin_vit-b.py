# Table 3, row 2: Flash Swin attention, no KV padding, no Cycle-scan.
_base_ = ['../_base_/models/hrsam_vit-b.py']
model = dict(backbone=dict(attn_cfg=dict(_delete_=True, type='FlashSwinAttention'), cycle_scan_cfg=None))
