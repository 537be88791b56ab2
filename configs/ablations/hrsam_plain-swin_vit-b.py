# Fig. 5 baseline: traditional Swin attention (cyclic roll + mask), no Cycle-scan.
# Same outputs as Flash Swin; only slower.
_base_ = ['../_base_/models/hrsam_vit-b.py']
model = dict(backbone=dict(attn_cfg=dict(_delete_=True, type='PlainSwinAttention'), cycle_scan_cfg=None))
