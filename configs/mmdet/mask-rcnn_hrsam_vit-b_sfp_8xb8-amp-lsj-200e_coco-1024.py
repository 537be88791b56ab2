# Mask R-CNN with HRSAM as a plain ViT backbone (ViTDet style): mmdet's own LSJ 1024² recipe
# (mask-rcnn_r50_fpn_8xb8-amp-lsj-200e_coco) with only the backbone and the neck swapped.
# HRSAM's last stage (768 channels, stride 16) -> SimpleFeaturePyramid -> strides 4..64 for
# mmdet's RPN (anchors at 4..64) and RoI heads (4..32). Needs mmdet (requirements/mmdet.txt).
# Weights into the backbone only (a converted HRSAM checkpoint or an MAE ViT-B, see
# docs/openmmlab_tasks.md), e.g.
#   model.backbone.init_cfg = dict(type='Pretrained', checkpoint='pretrain/hrsam_vit-b.pth', prefix='backbone.')
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_8xb8-amp-lsj-200e_coco.py']
custom_imports = dict(imports=['mmhrsam'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='mmhrsam.HRSAM', out_indices=(3, ), drop_path_rate=0.1),
    neck=dict(_delete_=True, type='mmhrsam.SimpleFeaturePyramid', in_channels=768, out_channels=256,
              num_outs=5))
# With out_indices the backbone's SAM-embedding fusion (lateral_convs, out_conv) gets no
# gradient; DDP must be told so.
find_unused_parameters = True
