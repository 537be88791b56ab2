# SAM-Lightening's dilated attention (stride 4 sub-grids) in HRSAM's frame, no Cycle-scan.
_base_ = ['../_base_/models/hrsam_vit-b.py']
model = dict(backbone=dict(attn_cfg=dict(_delete_=True, type='DilatedAttention', dilation=4), cycle_scan_cfg=None))
