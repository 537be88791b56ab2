# HQSeg-44K fine-tuning: the 160k schedule's optimizer (docs/architecture.md) over 40k iterations.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=40000),
]
train_cfg = dict(type='SeededIterBasedTrainLoop', max_iters=40000)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = dict(type='ClickTestLoop', target_size=1024, max_clicks=20)
