# Table 3, row 5: + multi-scale anchor map (= HRSAM++).
_base_ = ['../_base_/models/hrsam_plusplus_vit-b.py']
