# Table 3, row 2: Flash Swin attention, no KV padding, no Cycle-scan; distillation protocol.
_base_ = ['../hrsam/hrsam_kv-pad_4xb1_160k_sam-distill-1024.py']
model = dict(backbone=dict(attn_cfg=dict(_delete_=True, type='FlashSwinAttention'), cycle_scan_cfg=None))
