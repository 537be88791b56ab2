# HRSAM as a drop-in backbone for mmsegmentation: mmseg's ViT-B + MultiLevelNeck + UPerHead
# recipe with the ViT swapped for HRSAM's four stage outputs (768 channels each, 1/16).
# Needs mmsegmentation (pip install -e .[mmseg]). MAE initialisation:
#   python tools/model_converters/mae_to_mmhrsam.py mae_pretrain_vit_base.pth pretrain/hrsam_mae.pth
# then set model.backbone.init_cfg = dict(type='Pretrained', checkpoint='pretrain/hrsam_mae.pth', prefix='backbone.')
_base_ = ['mmseg::vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['mmhrsam'], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(_delete_=True, type='mmhrsam.HRSAM', out_indices=(0, 1, 2, 3), drop_path_rate=0.1))
