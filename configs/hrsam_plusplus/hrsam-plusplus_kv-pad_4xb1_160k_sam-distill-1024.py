# The HRSAM recipe of the _base_ config with the HRSAM++ backbone (512² anchor map, multi-scale Cycle-scan).
_base_ = ['../hrsam/hrsam_kv-pad_4xb1_160k_sam-distill-1024.py']
model = dict(
    backbone=dict(
        type='HRSAMPlusPlus',
        anchor_size=512,
        ms_cycle_scan_cfg=dict(type='MultiScaleCycleScan', d_state=32, scan_backend='auto')))
