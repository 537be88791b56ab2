# Paper App. D: AdamW lr 1e-4, wd 0.05, betas (0.9, 0.999); linear warm-up from
# 1e-6 over 1.5k iterations, then polynomial decay; 160k iterations (COCO + LVIS).
# No weight decay on pos-embed, pad tokens, A_log, D, gamma, norms and biases (docs/architecture.md, "Training rules").
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=160000),
]
train_cfg = dict(type='SeededIterBasedTrainLoop', max_iters=160000)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = dict(type='ClickTestLoop', target_size=1024, max_clicks=20)
