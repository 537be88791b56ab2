# SAM-Lightening ViT-S distilled progressively from SAM ViT-H on COCO + LVIS images at 1024²,
# 4 GPUs x 1 image, 160k iterations:
#   stage 1 (iterations 0-40k):     intermediate features, student blocks 2/5/8/11 -> teacher
#                                   blocks 7/15/23/31 (1x1 projections 384 -> 1280);
#   stage 2 (40k-120k):             the final 256x64x64 embedding;
#   stage 3 (120k-160k):            the embedding plus the masks that SAM ViT-H's frozen decoder
#                                   draws from it, against the teacher's masks (4x4 point grid).
# The stage lengths and layer pairs are this project's choice (the paper's abstract gives none).
# The teacher's outputs are stored once, fp16 (about 10 MiB per feature and image):
#   python3 tools/extract_teacher_embeddings.py CONFIG --teacher sam_vit_h \
#       --checkpoint pretrain/sam_vit_h_4b8939.pth --out data/sam_vit_h_features \
#       --features blocks.7 blocks.15 blocks.23 blocks.31 --device cuda
# and SAM ViT-H's decoder, the frozen head, comes from the converted official checkpoint:
#   python3 tools/model_converters/sam_to_mmhrsam.py sam_vit_h_4b8939.pth pretrain/sam_vit-h_mmhrsam.pth
# (For an online teacher instead, see the synthetic config next to this one: teacher=dict(...).)
_base_ = [
    '../_base_/datasets/hqseg44k_val.py', '../_base_/schedules/schedule_160k.py', '../_base_/default_runtime.py'
]
teacher_layers = ['blocks.7', 'blocks.15', 'blocks.23', 'blocks.31']
model = dict(
    type='ProgressiveDistiller',
    backbone=dict(type='SAMLightening', arch='vit-s', img_size=1024),
    head=dict(type='SAMHead',
              init_cfg=dict(type='Pretrained', checkpoint='pretrain/sam_vit-h_mmhrsam.pth', prefix='head.')),
    stages=[dict(begin=0, feature=1.0), dict(begin=40000, embedding=1.0),
            dict(begin=120000, embedding=1.0, mask=1.0)],
    feature_pairs=[('blocks.2', 'blocks.7'), ('blocks.5', 'blocks.15'), ('blocks.8', 'blocks.23'),
                   ('blocks.11', 'blocks.31')],
    teacher_channels=1280,
    mask_points_per_side=4,
    data_preprocessor=dict(type='InteractiveDataPreprocessor', mean=(123.675, 116.28, 103.53),
                           std=(58.395, 57.12, 57.375), bgr_input=False, pad_size=1024))
predictor = dict(target_size=1024, bgr_input=False)
# No augmentation: the student sees the teacher's exact input. LoadTeacherEmbedding comes
# first (it checks the image as loaded against the manifest's checksum).
distill_pipeline = [
    dict(type='LoadTeacherEmbedding', embedding_dir='data/sam_vit_h_features/', features=teacher_layers,
         preprocessing=dict(target_size=1024, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                            bgr_input=False)),
    dict(type='SampleObject'),
    dict(type='ResizeLongestSide', long_side=1024),
    dict(type='PackDistillationInputs'),
]
train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(type='CocoInteractiveDataset', data_root='data/coco/',
                 ann_file='annotations/instances_train2017.json', data_prefix=dict(img='train2017/'),
                 pipeline=distill_pipeline),
            dict(type='LvisInteractiveDataset', data_root='data/coco/', ann_file='annotations/lvis_v1_train.json',
                 data_prefix=dict(img=''), pipeline=distill_pipeline),
        ]))
