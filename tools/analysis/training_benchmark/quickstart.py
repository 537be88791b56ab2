"""The quickstart case: its config through MMEngine's ``Runner``, as ``tools/train.py CONFIG --amp``."""
from __future__ import annotations

import statistics
import tempfile
import time
from typing import Dict, Optional, Sequence

import torch
from mmengine.hooks import Hook

from mmhrsam.utils.benchmark import sync

from .configs import QUICKSTART, input_size, load_config, optim_cfg
from .measure import Clock, OpCounter
from .profiling import start_profiler, summarize_profile
from .step_cases import apply_variant


class ProbeHook(Hook):
    """Applies the variant before training; clock readings after every iteration
    (device-synchronized), the op count of one ``train_step``, a profile of the last
    iterations, and a stop at the deadline."""

    priority = 'VERY_LOW'

    def __init__(self, variant: Sequence[str], count_at: int, profile_at: int, profile_iters: int, device: str,
                 clock: Clock):
        self.variant = variant
        self.count_at, self.profile_at, self.profile_iters = count_at, profile_at, profile_iters
        self.device, self.clock = device, clock
        self.stamps: Dict[int, float] = {}
        self.ops_per_step: Optional[int] = None
        self.prof = None
        self.profile: Optional[Dict] = None

    def before_train(self, runner) -> None:
        apply_variant(runner.model, self.variant)
        train_step = runner.model.train_step

        def counted_train_step(*args, **kwargs):
            if runner.iter != self.count_at or 'compile' in self.variant:
                return train_step(*args, **kwargs)
            with OpCounter() as counter:
                outputs = train_step(*args, **kwargs)
            self.ops_per_step = counter.count
            return outputs
        runner.model.train_step = counted_train_step

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter == self.profile_at and self.profile_iters > 0:
            self.prof = start_profiler(self.device)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        sync(torch.device(self.device))
        self.stamps[runner.iter] = time.perf_counter()
        if self.prof is not None and runner.iter == self.profile_at + self.profile_iters - 1:
            self.prof.stop()
            self.profile, self.prof = summarize_profile(self.prof, self.profile_iters, self.device), None
        if self.clock.left() < 0 and runner.iter < self.profile_at:
            runner.train_loop.stop_training = True


def run_quickstart(args, variant: Sequence[str], clock: Clock) -> Dict:
    """The quickstart config through MMEngine's Runner, as ``tools/train.py CONFIG --amp``."""
    from mmengine.runner import Runner
    cfg = load_config(QUICKSTART, args.tiny, 'quickstart')
    count_at = args.warmup  # untimed: the dispatch mode slows that iteration down
    profile_at = count_at + 1 + args.iters
    cfg.train_cfg.max_iters = profile_at + args.profile_iters
    cfg.work_dir = tempfile.mkdtemp(prefix='benchmark_training_')
    cfg.launcher, cfg.log_level = 'none', 'WARNING'
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=10**9, save_last=False)
    cfg.default_hooks.logger.interval = 10**9
    if args.workers is not None:
        cfg.train_dataloader.num_workers = args.workers
        cfg.train_dataloader.persistent_workers = args.workers > 0
    cfg.optim_wrapper = optim_cfg(cfg, args.device, variant)
    probe = ProbeHook(variant, count_at, profile_at, args.profile_iters, args.device, clock)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(probe)
    runner.train()
    timed = [probe.stamps[i] - probe.stamps[i - 1] for i in range(count_at + 1, profile_at)
             if i in probe.stamps and i - 1 in probe.stamps]
    if not timed:
        return dict(case='quickstart', variant=','.join(variant), skipped='no timed iteration in time')
    batch = cfg.train_dataloader.batch_size
    return dict(case='quickstart', variant=','.join(variant), batch=batch, size=input_size(cfg),
                num_workers=cfg.train_dataloader.num_workers, median_s=statistics.median(timed),
                min_s=min(timed), times_s=timed, images_per_s=batch / statistics.median(timed),
                ops_per_step=probe.ops_per_step, profile=probe.profile)
