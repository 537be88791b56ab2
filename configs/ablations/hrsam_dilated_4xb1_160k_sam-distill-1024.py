# SAM-Lightening's dilated attention (stride 4 sub-grids) in HRSAM's frame, no Cycle-scan;
# distillation protocol.
_base_ = ['../hrsam/hrsam_kv-pad_4xb1_160k_sam-distill-1024.py']
model = dict(backbone=dict(attn_cfg=dict(_delete_=True, type='DilatedAttention', dilation=4), cycle_scan_cfg=None))
