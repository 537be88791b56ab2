# Quickstart: a tiny HRSAM (KV-padded Flash Swin + Cycle-scan, 2 stages of 2 blocks, width 128)
# with a narrow SAM head, click-trained on the built-in synthetic scenes (no download) at a
# 256² input, 600 iterations of batch 4 on CPU; then the click evaluation at 256².
#   bash tools/quickstart.sh            # train + evaluate, under 10 minutes on 2 CPU cores
_base_ = ['../_base_/default_runtime.py']
width = 128
model = dict(
    type='ClickSegmentor',
    gamma=0.6,
    max_sim_iters=4,  # the paper's 20 with P(k) ∝ 0.6^k rarely goes past 4
    loss=dict(type='NormalizedFocalLoss', alpha=0.5, gamma=2.0),
    backbone=dict(
        type='HRSAM',
        embed_dim=width,
        depth=4,
        num_heads=4,
        num_stages=2,
        window_size=8,
        attn_cfg=dict(type='KVPadSwinAttention', backend='auto'),
        cycle_scan_cfg=dict(type='CycleScan', d_state=8, scan_backend='auto'),
        pretrain_grid=16,
        out_channels=width),
    head=dict(type='SAMHead', embed_dim=width, image_size=256, decoder_mlp_dim=4 * width, decoder_num_heads=4,
              iou_head_hidden_dim=width),
    data_preprocessor=dict(type='InteractiveDataPreprocessor', mean=(123.675, 116.28, 103.53),
                           std=(58.395, 57.12, 57.375), bgr_input=False, pad_size=256))
train_pipeline = [
    dict(type='SampleObject'),
    dict(type='ResizeLongestSide', long_side=256),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInteractiveInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SyntheticHighResDataset', num_images=2000, image_size=(512, 768), max_objects=6, seed=0,
                 pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SyntheticHighResDataset', num_images=16, image_size=(512, 768), max_objects=6,
                 seed=10**6, test_mode=True, pipeline=[dict(type='PackInteractiveInputs')]))
test_evaluator = dict(type='ClickMetric', max_clicks=20)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=50, end=600),
]
train_cfg = dict(type='SeededIterBasedTrainLoop', max_iters=600)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = dict(type='ClickTestLoop', target_size=256, max_clicks=20, num_vis=4)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=200, max_keep_ckpts=1))
