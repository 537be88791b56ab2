# Table 1, setting 1 (fair data): HRSAM ViT-B click training on COCO + LVIS from MAE ViT-B,
# 4 GPUs x batch 1, 160k iterations at 1024²; evaluated on HQSeg-44K val (test_cfg.target_size).
# MAE init: python3 tools/model_converters/mae_to_mmhrsam.py mae_pretrain_vit_base.pth pretrain/mae_vit-b_mmhrsam.pth
_base_ = [
    '../_base_/models/hrsam_vit-b.py', '../_base_/datasets/coco_lvis.py', '../_base_/datasets/hqseg44k_val.py',
    '../_base_/schedules/schedule_160k.py', '../_base_/default_runtime.py'
]
model = dict(
    type='ClickSegmentor',
    gamma=0.6,  # P(k) ∝ 0.6^k (COCO; 0.9 for LVIS in the paper)
    max_sim_iters=20,
    loss=dict(type='NormalizedFocalLoss', alpha=0.5, gamma=2.0),
    backbone=dict(
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='pretrain/mae_vit-b_mmhrsam.pth', prefix='backbone.')))
