# The progressive-distillation recipe at toy scale on the built-in synthetic scenes (no
# download, CPU): a 4-block SAM-Lightening student (width 32) learns from a 4-block SAM ViT
# teacher (width 64) run online inside the model, 2 images per step at 256², 90 iterations:
# stage 1 (0-29) features of blocks 1 and 3 through 1x1 projections 32 -> 64, stage 2 (30-59)
# the embedding, stage 3 (60-89) the embedding and the masks of the frozen SAM decoder.
#   python3 tools/train.py configs/sam_lightening/sam-lightening-tiny_progressive-distill_1xb2_90it_synthetic-256.py
# The teacher has random weights here (give it SAM's through teacher.init_cfg): this config
# exercises the machinery, tests/models/segmentors/test_progressive_distiller.py runs it.
_base_ = ['../_base_/default_runtime.py']
model = dict(
    type='ProgressiveDistiller',
    backbone=dict(type='SAMLightening', img_size=256,
                  arch=dict(embed_dim=32, depth=4, num_heads=2, attn_pattern=('window', 2, 'window', 2))),
    teacher=dict(type='SAMViT', img_size=256,
                 arch=dict(embed_dim=64, depth=4, num_heads=2, global_attn_indexes=(1, 3))),
    head=dict(type='SAMHead', image_size=256),
    stages=[dict(begin=0, feature=1.0), dict(begin=30, embedding=1.0), dict(begin=60, embedding=1.0, mask=1.0)],
    feature_pairs=[('blocks.1', 'blocks.1'), ('blocks.3', 'blocks.3')],
    mask_points_per_side=2,
    data_preprocessor=dict(type='InteractiveDataPreprocessor', mean=(123.675, 116.28, 103.53),
                           std=(58.395, 57.12, 57.375), bgr_input=False, pad_size=256))
predictor = dict(target_size=256, bgr_input=False)
train_pipeline = [
    dict(type='SampleObject'),
    dict(type='ResizeLongestSide', long_side=256),
    dict(type='PackInteractiveInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SyntheticHighResDataset', num_images=64, image_size=(256, 384), seed=0,
                 pipeline=train_pipeline))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=10)]
train_cfg = dict(type='SeededIterBasedTrainLoop', max_iters=90)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=90, max_keep_ckpts=1))
