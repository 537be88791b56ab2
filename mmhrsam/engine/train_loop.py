"""An iteration-based training loop whose resumed runs repeat the uninterrupted run exactly."""
from __future__ import annotations

import random
import zlib

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from mmhrsam.registry import LOOPS


def iteration_seed(base_seed: int, iteration: int, rank: int) -> int:
    """A 32-bit seed that depends only on (base seed, iteration, rank)."""
    return zlib.crc32(f'{base_seed}/{iteration}/{rank}'.encode())


@LOOPS.register_module()
class SeededIterBasedTrainLoop(IterBasedTrainLoop):
    """MMEngine's iteration loop with every iteration's randomness derived from its index.

    Why: MMEngine restores model, optimizer, schedulers and the dataloader position on
    resume, but not the random generators, so click simulation (k draws, sampled clicks),
    stochastic depth and main-process augmentations would draw different numbers after a
    resume. Here Python's, NumPy's and torch's (CPU and CUDA) generators are re-seeded from
    (``runner.seed``, iteration, rank) right before each batch is fetched — also for the
    batches skipped on resume — so iteration i sees the same random numbers whether or not
    the run was interrupted. Dataloader workers keep their own generators, seeded by MMEngine
    per worker, and process the same samples in the same order after a resume.

    Args: as :class:`mmengine.runner.IterBasedTrainLoop`.
    """

    def _reseed(self, iteration: int) -> None:
        seed = iteration_seed(self.runner.seed, iteration, get_rank())
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # also seeds every CUDA device

    def run(self) -> torch.nn.Module:
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            print_log(f'Advance dataloader {self._iter} steps to skip data that has already been trained',
                      logger='current')
            for skipped in range(self._iter):
                self._reseed(skipped)
                next(self.dataloader_iterator)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            self._reseed(self._iter)
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
