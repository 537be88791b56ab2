# Mask R-CNN with HRSAM++ as a plain ViT backbone (ViTDet style): mmdet's own LSJ 1024² recipe
# (mask-rcnn_r50_fpn_8xb8-amp-lsj-200e_coco) with only the backbone and the neck swapped.
# HRSAM++'s last stage (main map and upsampled 512² anchor map concatenated: 2 x 768
# channels, stride 16) -> SimpleFeaturePyramid -> strides 4..64. Needs mmdet
# (requirements/mmdet.txt). Backbone-only weights: see docs/openmmlab_tasks.md.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_8xb8-amp-lsj-200e_coco.py']
custom_imports = dict(imports=['mmhrsam'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='mmhrsam.HRSAMPlusPlus', out_indices=(3, ), drop_path_rate=0.1),
    neck=dict(_delete_=True, type='mmhrsam.SimpleFeaturePyramid', in_channels=1536, out_channels=256,
              num_outs=5))
# With out_indices the backbone's SAM-embedding fusion (lateral_convs, out_conv) gets no
# gradient; DDP must be told so.
find_unused_parameters = True
