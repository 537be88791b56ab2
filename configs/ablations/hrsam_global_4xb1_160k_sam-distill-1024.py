# Table 3, row 1: global attention in every block, no Cycle-scan; the paper's distillation protocol.
_base_ = ['../hrsam/hrsam_kv-pad_4xb1_160k_sam-distill-1024.py']
model = dict(backbone=dict(attn_cfg=dict(_delete_=True, type='GlobalAttention'), cycle_scan_cfg=None))
