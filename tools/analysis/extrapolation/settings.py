"""The study's models, the ``--tiny`` options and the environment of its jobs."""
import os.path as osp

#: The repository root: the tools run from there.
ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))

#: Model key -> (config, label), in plotting order.
MODELS = {
    'global': ('configs/studies/hrsam-tiny_global_1xb4_600it_synthetic-1024.py', 'Global attention'),
    'flash-swin': ('configs/studies/hrsam-tiny_flash-swin_1xb4_600it_synthetic-1024.py', 'Flash Swin'),
    'hrsam': ('configs/studies/hrsam-tiny_kv-pad+cycle-scan_1xb4_600it_synthetic-1024.py',
              'HRSAM (KV-pad + Cycle-scan)'),
}
#: Warm-up iterations of the study configs' schedule (shortened for very short runs).
WARMUP_ITERS = 50
#: ``--tiny``: 128² training on 128-192 px scenes, 4² windows (so that windows stay local on
#: 8x8 tokens), batch 2, 2 test scenes, 5 clicks, no dataloader workers.
TINY_OPTIONS = [
    'model.backbone.window_size=4', 'model.backbone.pretrain_grid=8', 'model.head.image_size=128',
    'model.data_preprocessor.pad_size=128', 'model.max_sim_iters=2',
    'train_dataloader.dataset.pipeline.1.long_side=128', 'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'train_dataloader.dataset.image_size=[128,192]', 'train_dataloader.dataset.num_images=32',
    'test_dataloader.num_workers=0', 'test_dataloader.dataset.image_size=[128,192]',
    'test_dataloader.dataset.num_images=2', 'test_cfg.max_clicks=5', 'test_evaluator.max_clicks=5',
    'default_hooks.logger.interval=1',
]
TINY_DEFAULTS = dict(iters=2, eval_sizes=[128, 256], score_images=1)
#: NVLink multicast stays off (a program using it can take a shared host's GPUs down).
NO_MULTICAST = dict(NCCL_NVLS_ENABLE='0', TORCH_SYMM_MEM_DISABLE_MULTICAST='1', NVSHMEM_DISABLE_NVLS='1')
