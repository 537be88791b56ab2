# Resolution-extrapolation study (docs/extrapolation_study.md; tools/analysis/extrapolation_study.py):
# a tiny HRSAM-shaped encoder click-trained from scratch at 1024² on the built-in synthetic scenes,
# then evaluated at 1024², 2048² and 4096². The three study configs differ only in the token mixer:
#   hrsam-tiny_global_*            GlobalAttention (every token attends to every token)
#   hrsam-tiny_flash-swin_*        FlashSwinAttention (16² windows, alternating shift 0 / 8)
#   hrsam-tiny_kv-pad+cycle-scan_* KVPadSwinAttention + one Cycle-scan per stage (the full HRSAM)
#
# Why the comparison is fair:
# - Same everything but the mixer: depth 6 (2 stages of 3 blocks), width 256, 8 heads, MLP 4x,
#   the same patch embedding, multi-stage fusion and SAM head; the only extra parameters are the
#   KV pad token (256 per block) and the two Cycle-scan modules of the full HRSAM, which are
#   part of its token mixer by design (paper Fig. 2).
# - Same data in the same order: one scene generator and seed (training scenes 0..N, held-out
#   scenes from seed 10^6), InfiniteSampler with a fixed seed, the same number of dataloader
#   workers (worker seeds derive from the run seed), and SeededIterBasedTrainLoop re-seeding
#   Python / NumPy / torch before every iteration, so iteration i draws the same simulated-click
#   counts in every run. Initial weights come from the same seed; shared layers still draw
#   different values where a mixer adds parameters before them (one seed per model: run-to-run
#   noise is not measured by the default study).
# - Same schedule: AdamW lr 1e-3, 50 warm-up iterations, linear decay to 0 at the last iteration
#   (tools/analysis/extrapolation_study.py sets train_cfg.max_iters and the decay's end together),
#   batch 4, bf16 autocast (train.py --amp), gradient clipping at 1.
# - Same positional handling at every test size. The absolute position embedding is learned on
#   the 64x64 token grid of 1024² inputs (pretrain_grid=64), so training needs no resizing; at
#   2048² / 4096² HRSAM.resized_pos_embed resizes it bilinearly (align_corners=False) to 128² /
#   256² tokens, for all three models alike. Axial RoPE rotates q and k by 0.5 x the absolute
#   (row, col) token position with no rescaling: windowed models only ever see query-key offsets
#   of at most 15 tokens per axis, at any size, while global attention sees offsets up to 127
#   (2048²) and 255 (4096²) after training on at most 63 -- this is part of what the study
#   tests. The SAM head computes its dense positional encoding on the 64x64 training grid and
#   resizes it (dense_pe='resize'), as every HRSAM config does.
# - Same evaluation: tools/test.py's exact click protocol (20 clicks, IoU at the original
#   resolution) on the same held-out scenes, the encoder in bf16 autocast on GPU, only
#   --target-size changing.
_base_ = ['../../_base_/default_runtime.py', '../../_base_/datasets/synthetic.py']
width = 256
model = dict(
    type='ClickSegmentor',
    gamma=0.8,  # as the quickstart: more multi-click steps than the paper's 0.6 for a short schedule
    max_sim_iters=6,
    loss=dict(type='NormalizedFocalLoss', alpha=0.5, gamma=2.0),
    backbone=dict(
        type='HRSAM',
        embed_dim=width,
        depth=6,
        num_heads=8,
        num_stages=2,
        window_size=16,
        attn_cfg=dict(type='FlashSwinAttention', backend='auto'),
        cycle_scan_cfg=None,
        pretrain_grid=64,
        out_channels=width,
        drop_path_rate=0.0),
    head=dict(type='SAMHead', embed_dim=width, image_size=1024, decoder_mlp_dim=4 * width, decoder_num_heads=8,
              iou_head_hidden_dim=width, dense_pe='resize'),
    data_preprocessor=dict(type='InteractiveDataPreprocessor', mean=(123.675, 116.28, 103.53),
                           std=(58.395, 57.12, 57.375), bgr_input=False, pad_size=1024))
# Scenes of 1024-2048 px per side with one or two large objects (wavy blobs, stars, rings: fine
# boundaries a short schedule can learn). Training resizes them to 1024; the held-out scenes come
# from the same generator, so 2048² evaluation reaches their native resolution and 4096² is pure
# upsampling: any change from 2048² to 4096² is the token count's, not the image's.
scenes = dict(image_size=(1024, 2048), max_objects=2, shapes=('wavy', 'star', 'ring'), object_scale=(0.2, 0.4))
# The synthetic data base gives the pipeline (one object, long side resized to 1024, photometric
# distortion, flip) and the loaders; the study changes the scenes, batch, workers and sampler seed.
train_dataloader = dict(
    batch_size=4,
    num_workers=4,  # three trainings share one 16-core host in the study
    sampler=dict(seed=0),
    dataset=dict(**scenes))
test_dataloader = dict(dataset=dict(num_images=16, **scenes))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0),
    clip_grad=dict(max_norm=1.0))
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=50, end=max_iters),
]
train_cfg = dict(type='SeededIterBasedTrainLoop', max_iters=max_iters)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = dict(type='ClickTestLoop', target_size=1024, max_clicks=20)
randomness = dict(seed=0)
# One checkpoint, at the end (save_last); the log every 50 iterations with an ETA.
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=10**6, max_keep_ckpts=1, save_last=True))
