"""Evaluate a checkpoint with the click protocol (NoC, NoF, mIoU per click, 5-mIoU, 20-SPC).

Examples::

    python3 tools/test.py CONFIG CHECKPOINT
    python3 tools/test.py CONFIG CHECKPOINT --target-size 2048 --precision bf16
    bash tools/dist_test.sh CONFIG CHECKPOINT 2

Writes ``summary.json``, ``per_instance.csv`` and ``miou_vs_clicks.png`` into the run's log
directory under the work dir (and drawings of the first ``--num-vis`` instances in ``vis/``).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import mmhrsam  # noqa: E402,F401
from mmengine.runner import Runner  # noqa: E402

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
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    for key in ('target_size', 'max_clicks', 'clicker', 'precision', 'num_vis'):
        value = getattr(args, key)
        if value is not None:
            cfg.test_cfg[key] = value
    cfg.load_from = args.checkpoint
    cfg.resume = False
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    shutdown_distributed()
    return metrics


if __name__ == '__main__':
    main()
