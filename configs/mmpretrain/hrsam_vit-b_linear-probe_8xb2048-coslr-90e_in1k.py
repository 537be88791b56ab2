# Linear probing of a trained HRSAM: mmpretrain's own MAE linear-probe recipe
# (mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k: ImageNet-1k, LARS, 90 epochs)
# with the ViT swapped for HRSAM. The probe reads the global average of HRSAM's fused
# 256-channel embedding (the map SAM's mask decoder reads). The backbone is held fixed by a
# zero learning rate and zero weight decay (HRSAM has no frozen_stages; gradients are still
# computed through it). Needs mmpretrain (requirements/mmpretrain.txt). Load the weights to
# probe into the backbone only:
#   model.backbone.init_cfg = dict(type='Pretrained', checkpoint='work_dirs/.../iter_160000.pth', prefix='backbone.')
_base_ = ['mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py']
custom_imports = dict(imports=['mmhrsam'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='mmhrsam.HRSAM'),
    neck=dict(_delete_=True, type='GlobalAveragePooling'),
    head=dict(in_channels=256))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.0, decay_mult=0.0)}))
