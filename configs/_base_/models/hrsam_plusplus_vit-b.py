# HRSAM++ ViT-B: HRSAM plus a 512² anchor map and multi-scale Cycle-scan fusion.
_base_ = ['./hrsam_vit-b.py']
model = dict(
    backbone=dict(
        type='HRSAMPlusPlus',
        anchor_size=512,
        ms_cycle_scan_cfg=dict(type='MultiScaleCycleScan', d_state=32, scan_backend='auto')))
