# Multi-GPU check of the distillation recipe (docs/benchmarks.md, "Two GPUs"): HRSAM ViT-B
# distilled from stored SAM ViT-H embeddings of the synthetic scenes at 1024², 2 GPUs x 4
# images, 300 iterations. One GPU with the same global batch:
#   bash tools/dist_train.sh CONFIG 1 --amp --cfg-options train_dataloader.batch_size=8
# No stochastic depth, no augmentation: 1-GPU and 2-GPU runs compute the same global batches,
# so their loss curves must agree up to rounding.
_base_ = [
    '../_base_/models/hrsam_vit-b.py', '../_base_/datasets/synthetic_sam-distill.py',
    '../_base_/schedules/schedule_40k.py',
    '../_base_/default_runtime.py'
]
model = dict(type='SAMDistiller', frozen_modules=('head', ))
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=30, end=300),
]
train_cfg = dict(type='SeededIterBasedTrainLoop', max_iters=300)
# The head is frozen, so every trainable parameter takes part in each step: DDP needs no
# search for unused parameters (the runtime default's True costs a graph traversal per step).
find_unused_parameters = False
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=100, max_keep_ckpts=3))
log_processor = dict(window_size=10)
custom_hooks = [
    dict(type='ParamSyncCheckHook', interval=50, record=True),
    dict(type='IterationRecordHook', warmup=20),
]
