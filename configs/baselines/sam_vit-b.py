# SAM ViT-B (segment_anything's own image encoder) as a baseline / distillation teacher.
# Official checkpoints: tools/model_converters/sam_to_mmhrsam.py SRC DST.
model = dict(
    type='InteractiveSAM',
    backbone=dict(type='SAMViT', arch='vit-b', img_size=1024),
    head=dict(type='SAMHead'))
predictor = dict(target_size=1024, bgr_input=False)
