# Table 3, row 4: Flash Swin + KV-only padding + Cycle-scan (= HRSAM).
_base_ = ['../_base_/models/hrsam_vit-b.py']
