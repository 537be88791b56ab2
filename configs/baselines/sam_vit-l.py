# SAM ViT-L (segment_anything's own image encoder) as a baseline / distillation teacher.
# Official checkpoints: tools/model_converters/sam_to_mmhrsam.py SRC DST.
model = dict(
    type='InteractiveSAM',
    backbone=dict(type='SAMViT', arch='vit-l', img_size=1024),
    head=dict(type='SAMHead'))
predictor = dict(target_size=1024, bgr_input=False)
