"""Evaluate a checkpoint with the click protocol (NoC, NoF, mIoU per click, 5-mIoU, 20-SPC).

Examples::

    python3 tools/test.py CONFIG CHECKPOINT
    python3 tools/test.py CONFIG CHECKPOINT --target-size 2048 --precision bf16
    python3 tools/test.py CONFIG RELEASED_CHECKPOINT --protocol original   # the paper's protocol
    bash tools/dist_test.sh CONFIG CHECKPOINT 2

Writes ``summary.json``, ``per_instance.csv`` and ``miou_vs_clicks.png`` into the run's log
directory under the work dir (and drawings of the first ``--num-vis`` instances in ``vis/``).

The checkpoint is loaded strictly (a missing or unexpected key is an error), in the
project's layout or in the released HRSAM / HRSAM++ layout (converted on load). The
evaluation protocols are described in docs/evaluation_protocol.md.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import mmhrsam  # noqa: E402,F401
from mmengine.model import is_model_wrapper  # noqa: E402
from mmengine.runner import CheckpointLoader, Runner  # noqa: E402

from mmhrsam.utils.checkpoint import load_model_weights  # noqa: E402
from mmhrsam.utils.launch import add_common_args, load_config, shutdown_distributed  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate an mmhrsam model with the click protocol')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint (MMEngine training checkpoint or a converted model); '
                        'omit to evaluate the randomly initialized / init_cfg weights')
    parser.add_argument('--target-size', type=int, help='long side of the encoder input (Table 2)')
    parser.add_argument('--max-clicks', type=int, help='clicks per instance')
    parser.add_argument('--clicker', choices=['auto', 'cpu', 'device'], help='where clicks are computed')
    parser.add_argument('--precision', choices=['fp32', 'bf16'], help='autocast of encoder and decoder')
    parser.add_argument('--num-vis', type=int, help='instances drawn with clicks and masks (per process)')
    parser.add_argument('--protocol', choices=['exact', 'original'],
                        help="click protocol: 'exact' (the project's deterministic one, default) or "
                        "'original' (the original implementation's, as the paper's tables were made)")
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    for key in ('target_size', 'max_clicks', 'clicker', 'precision', 'num_vis', 'protocol'):
        value = getattr(args, key)
        if value is not None:
            cfg.test_cfg[key] = value
    # Loaded here rather than through load_from, which MMEngine applies non-strictly.
    cfg.load_from = None
    cfg.resume = False
    runner = Runner.from_cfg(cfg)
    if args.checkpoint is not None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        load_model_weights(model, CheckpointLoader.load_checkpoint(args.checkpoint, map_location='cpu'))
        runner.logger.info(f'Loaded checkpoint {args.checkpoint} (strict)')
    metrics = runner.test()
    shutdown_distributed()
    return metrics


if __name__ == '__main__':
    main()
