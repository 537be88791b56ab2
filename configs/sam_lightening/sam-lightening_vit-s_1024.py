# SAM-Lightening ViT-S: SAM's ViT with Dilated Flash Attention (rate-2 dilated blocks
# alternating with SAM's 14x14 windows, mmhrsam.models.backbones.sam_lightening), SAM's
# 256-channel neck, and SAM's prompt encoder + mask decoder unchanged (64x64 embedding at
# 1024²). Weights come from progressive distillation
# (sam-lightening_vit-s_progressive-distill_4xb1_160k_sam-distill-1024.py).
model = dict(
    type='InteractiveSAM',
    backbone=dict(type='SAMLightening', arch='vit-s', img_size=1024),
    head=dict(type='SAMHead'))
predictor = dict(target_size=1024, bgr_input=False)
