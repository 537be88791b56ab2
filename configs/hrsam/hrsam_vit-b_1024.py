# HRSAM ViT-B for clicking on 1024² inputs.
_base_ = ['../_base_/models/hrsam_vit-b.py']
predictor = dict(target_size=1024)
