"""Train a model from a config (one process; tools/dist_train.sh for several).

Examples::

    python3 tools/train.py configs/quickstart/hrsam-tiny_kv-pad_1xb4_1000it_synthetic-256.py
    python3 tools/train.py CONFIG --resume                 # continue from the last checkpoint
    python3 tools/train.py CONFIG --amp --cfg-options train_cfg.max_iters=1000
    bash tools/dist_train.sh CONFIG 4                      # torchrun, 4 processes
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import mmhrsam  # noqa: E402,F401  (registers everything)
from mmengine.runner import Runner  # noqa: E402

from mmhrsam.utils.launch import add_common_args, load_config, shutdown_distributed  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train an mmhrsam model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help="resume from a checkpoint path, or with no value from the work dir's latest")
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (bf16 autocast where supported, else fp16 with loss scaling)')
    add_common_args(parser)
    return parser.parse_args(argv)


def enable_amp(cfg) -> None:
    import torch
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        return
    wrapper.type = 'AmpOptimWrapper'
    bf16 = not torch.cuda.is_available() or torch.cuda.is_bf16_supported()
    wrapper.dtype = 'bfloat16' if bf16 else 'float16'
    # bf16 has fp32's exponent range: loss scaling only adds an unscale pass and a host sync
    # per step, so the scaler is off; fp16 needs dynamic scaling.
    wrapper.loss_scale = 'dynamic' if not bf16 else dict(enabled=False)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    runner = Runner.from_cfg(cfg)
    runner.train()
    shutdown_distributed()
    return runner


if __name__ == '__main__':
    main()
