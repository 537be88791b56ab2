# Classification with HRSAM as the backbone: mmpretrain's own MAE fine-tuning recipe
# (mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k: ImageNet-1k, 224², AdamW, layer-wise lr
# decay 0.65, Mixup/CutMix) with the ViT swapped for HRSAM. The head reads the global average
# of the last stage (768 channels), as the recipe's ViT does with out_type='avg_featmap'.
# Use it to pretrain HRSAM's blocks on classification, or to fine-tune and compare encoders.
# Needs mmpretrain (requirements/mmpretrain.txt). Backbone-only weights, e.g. a converted MAE
# ViT-B (tools/model_converters/mae_to_mmhrsam.py):
#   model.backbone.init_cfg = dict(type='Pretrained', checkpoint='pretrain/hrsam_mae.pth', prefix='backbone.')
_base_ = ['mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py']
custom_imports = dict(imports=['mmhrsam'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='mmhrsam.HRSAM', out_indices=(3, ), drop_path_rate=0.1),
    neck=dict(_delete_=True, type='GlobalAveragePooling'))
# mmpretrain's LearningRateDecayOptimWrapperConstructor asks the backbone for
# get_layer_depth(), which HRSAM does not have; mmhrsam's constructor gives the same
# lr * rate ** (L + 1 - layer_id) rule with HRSAM's layer ids (Cycle-scan modules included)
# and its own no-weight-decay list in place of the recipe's custom_keys.
optim_wrapper = dict(
    constructor='mmhrsam.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, layer_decay_rate=0.65))
# With out_indices the backbone's SAM-embedding fusion (lateral_convs, out_conv) gets no
# gradient; DDP must be told so.
find_unused_parameters = True
