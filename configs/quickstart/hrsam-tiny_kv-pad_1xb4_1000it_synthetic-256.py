# Quickstart: a tiny HRSAM (KV-padded Flash Swin + one Cycle-scan, 4 blocks of width 128) with
# a narrow SAM head, click-trained from scratch on the built-in synthetic scenes (no download)
# at a 256² input, 1000 iterations of batch 4 on CPU; then the click evaluation at 256².
#   bash tools/quickstart.sh            # train + evaluate, under 10 minutes on 2 CPU cores
# The scenes are small (256-384 px) with one or two large objects (stars, wavy blobs, rings) so
# that a model trained from scratch in minutes learns something measurable; the full-size
# configs train on the 1024²-4096² scenes of configs/_base_/datasets/synthetic.py.
_base_ = ['../_base_/default_runtime.py']
width = 128
model = dict(
    type='ClickSegmentor',
    gamma=0.8,  # more multi-click steps than the paper's 0.6: the evaluation clicks 20 times
    max_sim_iters=6,
    loss=dict(type='NormalizedFocalLoss', alpha=0.5, gamma=2.0),
    backbone=dict(
        type='HRSAM',
        embed_dim=width,
        depth=4,
        num_heads=4,
        num_stages=1,
        window_size=8,
        attn_cfg=dict(type='KVPadSwinAttention', backend='auto'),
        cycle_scan_cfg=dict(type='CycleScan', d_state=8, scan_backend='auto'),
        pretrain_grid=16,
        out_channels=width),
    head=dict(type='SAMHead', embed_dim=width, image_size=256, decoder_mlp_dim=4 * width, decoder_num_heads=4,
              iou_head_hidden_dim=width),
    data_preprocessor=dict(type='InteractiveDataPreprocessor', mean=(123.675, 116.28, 103.53),
                           std=(58.395, 57.12, 57.375), bgr_input=False, pad_size=256))
scenes = dict(image_size=(256, 384), max_objects=2, shapes=('wavy', 'star', 'ring'), object_scale=(0.2, 0.4))
train_pipeline = [
    dict(type='SampleObject'),
    dict(type='ResizeLongestSide', long_side=256),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInteractiveInputs'),
]
train_dataloader = dict(
    batch_size=4,
    # Two workers take the scene making (15-30 ms per batch) off a GPU training step.
    # tools/quickstart.sh loads in the main process on machines with 2 cores or fewer, where a
    # worker process competes with the two compute threads (0.45 vs 0.57 s per iteration).
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SyntheticHighResDataset', num_images=6000, seed=0, pipeline=train_pipeline,
                 **scenes))
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SyntheticHighResDataset', num_images=16, seed=10**6, test_mode=True,
                 pipeline=[dict(type='PackInteractiveInputs')], **scenes))
test_evaluator = dict(type='ClickMetric', max_clicks=20)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=50, end=1000),
]
train_cfg = dict(type='SeededIterBasedTrainLoop', max_iters=1000)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = dict(type='ClickTestLoop', target_size=256, max_clicks=20, num_vis=4)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=500, max_keep_ckpts=1))
