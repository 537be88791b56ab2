# Fig. 5 baseline: traditional Swin attention (cyclic roll + mask), no Cycle-scan. Same outputs
# as Flash Swin, only slower; distillation protocol.
_base_ = ['../hrsam/hrsam_kv-pad_4xb1_160k_sam-distill-1024.py']
model = dict(backbone=dict(attn_cfg=dict(_delete_=True, type='PlainSwinAttention'), cycle_scan_cfg=None))
