# Table 3, row 4: Flash Swin + KV-only padding + Cycle-scan (= HRSAM); distillation protocol.
_base_ = ['../hrsam/hrsam_kv-pad_4xb1_160k_sam-distill-1024.py']
