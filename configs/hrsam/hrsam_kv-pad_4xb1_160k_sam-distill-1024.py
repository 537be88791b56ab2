# Table 1, setting 2 (and Table 3's protocol): HRSAM ViT-B distilled from SAM ViT-H embeddings
# of COCO + LVIS images at 1024², MSE loss, layer-wise lr decay 0.9, head frozen; 4 x 1, 160k.
_base_ = [
    '../_base_/models/hrsam_vit-b.py', '../_base_/datasets/coco_lvis_sam-distill.py',
    '../_base_/datasets/hqseg44k_val.py', '../_base_/schedules/schedule_160k.py', '../_base_/default_runtime.py'
]
model = dict(
    type='SAMDistiller',
    frozen_modules=('head', ),
    backbone=dict(
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrain/mae_vit-b_mmhrsam.pth', prefix='backbone.')),
    # SAM's decoder, kept frozen so the distilled encoder plugs into it:
    # python3 tools/model_converters/sam_to_mmhrsam.py sam_vit_h_4b8939.pth pretrain/sam_vit-h_mmhrsam.pth
    head=dict(init_cfg=dict(type='Pretrained', checkpoint='pretrain/sam_vit-h_mmhrsam.pth', prefix='head.')))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.9))
