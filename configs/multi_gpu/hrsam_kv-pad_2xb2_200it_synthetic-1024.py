# Multi-GPU check of click training (docs/benchmarks.md, "Two GPUs"): HRSAM ViT-B click-trained
# from scratch on the synthetic scenes at 1024², 2 GPUs x 2 images, 200 iterations, then the
# click evaluation at 1024² on 8 held-out scenes. One GPU with the same global batch:
#   bash tools/dist_train.sh CONFIG 1 --amp --cfg-options train_dataloader.batch_size=4
_base_ = [
    '../_base_/models/hrsam_vit-b.py', '../_base_/datasets/synthetic.py', '../_base_/schedules/schedule_40k.py',
    '../_base_/default_runtime.py'
]
model = dict(
    type='ClickSegmentor',
    gamma=0.6,
    max_sim_iters=20,
    loss=dict(type='NormalizedFocalLoss', alpha=0.5, gamma=2.0))
train_dataloader = dict(batch_size=2, num_workers=8, dataset=dict(num_images=2000))
test_dataloader = dict(dataset=dict(num_images=8))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=20, end=200),
]
train_cfg = dict(type='SeededIterBasedTrainLoop', max_iters=200)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=100, max_keep_ckpts=2))
log_processor = dict(window_size=10)
custom_hooks = [
    dict(type='ParamSyncCheckHook', interval=50, record=True),
    dict(type='IterationRecordHook', warmup=20),
]
