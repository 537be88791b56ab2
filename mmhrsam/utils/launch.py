"""Shared set-up of tools/train.py and tools/test.py: config, work dir, distributed launch."""
from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments both tools take."""
    parser.add_argument('--work-dir', help='directory for logs and checkpoints '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries, e.g. train_cfg.max_iters=100 model.gamma=0.9')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (tools/dist_train.sh and dist_test.sh use torchrun: pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def load_config(path: str, work_dir: Optional[str], options: dict, launcher: str) -> Config:
    """Read a config, apply overrides, fill ``work_dir``/``launcher`` and the CPU launch settings.

    Also lets ``torch.load`` unpickle MMEngine training checkpoints: since torch 2.6 it
    defaults to ``weights_only=True``, which rejects the message-hub history (numpy arrays,
    ``HistoryBuffer``) that MMEngine 0.10 stores and reads back with a plain ``torch.load``
    on resume / ``load_from``. Only pass checkpoints you trust to these tools.
    """
    os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    if launcher != 'none' and not torch.cuda.is_available():
        setup_cpu_distributed(cfg)
    return cfg


def setup_cpu_distributed(cfg: Config) -> None:
    """Make MMEngine's DDP set-up work without GPUs (gloo, no device ids).

    MMEngine's PyTorch launcher calls ``torch.cuda.set_device`` and its DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``, both of which fail on a CPU-only machine: the process
    group is initialized here with gloo first (MMEngine then keeps it), and the wrapper is
    given ``device_ids=None``.
    """
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))
    env_cfg = cfg.get('env_cfg') or {}
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    cfg.env_cfg = env_cfg
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    # MMEngine reads this top-level key only when it builds the wrapper itself
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper


def shutdown_distributed() -> None:
    """Destroy the process group at the end of a tool (torch warns about leaks otherwise).

    The barrier first: a rank that tears gloo down while another is still writing its last
    checkpoint makes the other abort.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
