# Evaluate HRSAM++ ViT-B on DAVIS-345 with the click protocol at a 2048² input.
_base_ = ['../_base_/models/hrsam_plusplus_vit-b.py', '../_base_/datasets/davis.py', '../_base_/default_runtime.py']
test_cfg = dict(type='ClickTestLoop', target_size=2048, max_clicks=20)
