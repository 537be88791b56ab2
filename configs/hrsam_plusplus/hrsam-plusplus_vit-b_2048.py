# HRSAM++ ViT-B for clicking on 2048² inputs (paper Table 1).
_base_ = ['../_base_/models/hrsam_plusplus_vit-b.py']
predictor = dict(target_size=2048)
