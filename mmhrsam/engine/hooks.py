"""Hooks for training runs."""
from __future__ import annotations

import json
import os.path as osp
import time
from typing import List, Optional

import numpy as np
import torch
import torch.distributed as dist
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmhrsam.registry import HOOKS


@HOOKS.register_module()
class ParamSyncCheckHook(Hook):
    """Checks every ``interval`` iterations that all processes hold the same weights.

    DDP keeps replicas equal only if every rank applies the same update; a rank-dependent
    code path (a parameter without gradient on one rank, a frozen module in train mode, a
    non-deterministic optimizer) makes them drift silently. The hook gathers a float64 sum
    and sum of squares of every parameter from all ranks and raises when they differ; with
    ``record=True`` each rank also appends ``(iteration, checksums)`` to
    ``<work_dir>/param_checksums_rank<r>.json``.

    Args:
        interval (int): check every this many iterations.
        record (bool): write the per-rank checksum files.
        atol (float): tolerance on the checksums (0: exact).
    """

    priority = 'LOW'

    def __init__(self, interval: int = 100, record: bool = False, atol: float = 0.0):
        self.interval, self.record, self.atol = int(interval), bool(record), float(atol)
        self.history: List[list] = []

    @staticmethod
    def checksum(model: torch.nn.Module) -> List[float]:
        module = model.module if is_model_wrapper(model) else model
        with torch.no_grad():
            values = [p.detach().double() for p in module.parameters()]
            return [float(sum(v.sum() for v in values)), float(sum((v * v).sum() for v in values))]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: Optional[dict] = None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        mine = self.checksum(runner.model)
        if self.record:
            self.history.append([runner.iter + 1, mine])
            path = osp.join(runner.work_dir, f'param_checksums_rank{get_rank()}.json')
            with open(path, 'w') as f:
                json.dump(self.history, f)
        if get_world_size() > 1:
            everyone = all_gather_object(mine)
            worst = max(abs(a - b) for other in everyone for a, b in zip(other, mine))
            if worst > self.atol:
                module = runner.model.module if is_model_wrapper(runner.model) else runner.model
                sums = {n: float(p.detach().double().sum()) for n, p in module.named_parameters()}
                all_sums = all_gather_object(sums)
                differing = [n for n in sums if any(abs(o[n] - sums[n]) > self.atol for o in all_sums)]
                raise RuntimeError(f'replicas of {type(runner.model).__name__} diverged at iteration '
                                   f'{runner.iter + 1}: parameter checksums '
                                   f'per rank {everyone}; differing parameters ({len(differing)}): '
                                   f'{differing[:10]}')


@HOOKS.register_module()
class IterationRecordHook(Hook):
    """Records, per training iteration, the loss averaged over all ranks and the wall time.

    Why: MMEngine logs rank 0's loss smoothed over a window, which is neither the global
    batch's loss nor comparable between runs on different numbers of GPUs; scaling studies
    need both exactly. At the end of training rank 0 writes ``<work_dir>/iteration_record.json``::

        {"world_size", "batch_size_per_rank", "iterations": [i, ...], "loss": [...],
         "time_s": [...],                       # seconds since the first recorded iteration
         "images_per_s": ..., "images_per_s_steady": ..., "timed_iterations": [first, last]}

    ``images_per_s`` counts global images over the iterations after ``warmup`` (compilation,
    allocator and dataloader start-up excluded) by wall clock, so it includes what other hooks
    do in that window (checkpoint writes, checks); ``images_per_s_steady`` divides the global
    batch by the median iteration interval, i.e. the rate between such events. With
    ``cuda_sync`` the clock is read after a device synchronization, so the time covers the GPU
    work of each step.

    Args:
        warmup (int): iterations left out of the throughput.
        cuda_sync (bool): synchronize the current CUDA device before reading the clock.
    """

    priority = 'LOW'

    def __init__(self, warmup: int = 20, cuda_sync: bool = True):
        self.warmup, self.cuda_sync = int(warmup), bool(cuda_sync)
        self.iterations: List[int] = []
        self.losses: List[float] = []
        self.times: List[float] = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: Optional[dict] = None) -> None:
        if self.cuda_sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        loss = outputs['loss'].detach().float().reshape(1).clone() if outputs and 'loss' in outputs else None
        if loss is not None and get_world_size() > 1:
            dist.all_reduce(loss)
            loss /= dist.get_world_size()
        self.iterations.append(runner.iter + 1)
        self.losses.append(float(loss) if loss is not None else float('nan'))
        self.times.append(now)

    def after_train(self, runner) -> None:
        if get_rank() != 0 or not self.times:
            return
        start = self.times[0]
        record = dict(world_size=get_world_size(), batch_size_per_rank=runner.train_dataloader.batch_size,
                      iterations=self.iterations, loss=self.losses, time_s=[t - start for t in self.times])
        # the clock reading of the last warm-up iteration starts the timed window
        first, last = min(max(self.warmup - 1, 0), len(self.times) - 1), len(self.times) - 1
        if last - first >= 1:
            batch = record['world_size'] * record['batch_size_per_rank']
            steps = np.diff(self.times[first:])
            record.update(images_per_s=(last - first) * batch / (self.times[last] - self.times[first]),
                          images_per_s_steady=batch / float(np.median(steps)),
                          timed_iterations=[self.iterations[first] + 1, self.iterations[last]])
        with open(osp.join(runner.work_dir, 'iteration_record.json'), 'w') as f:
            json.dump(record, f)
