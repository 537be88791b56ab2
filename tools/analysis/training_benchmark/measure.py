"""Measuring: the run's deadline, the matmul rate, the operator counter, step timing, FLOPs."""
from __future__ import annotations

import functools
import json
import statistics
import time
from typing import Callable, Dict, List

import torch
from count_flops import count_encoder, encoder_cfg  # tools/analysis/count_flops.py, next to the script

from mmhrsam.utils.benchmark import sync


class Clock:
    """The run's deadline."""

    def __init__(self, limit_s: float):
        self.end = time.perf_counter() + limit_s

    def left(self) -> float:
        return self.end - time.perf_counter()


def matmul_rate(device: str, size: int, reps: int = 10) -> Dict:
    """Median FLOP/s of a (size x size) @ (size x size) matmul: bf16 on CUDA, fp32 on the CPU."""
    dtype = torch.bfloat16 if device.startswith('cuda') else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times = []
    for i in range(reps + 2):
        sync(torch.device(device))
        t0 = time.perf_counter()
        a @ b
        sync(torch.device(device))
        if i >= 2:
            times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    return dict(size=size, dtype=str(dtype).replace('torch.', ''), seconds=seconds,
                flops_per_s=2 * size**3 / seconds)


class OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Operators dispatched (views excluded): a device-independent proxy for kernel launches."""

    VIEWS = frozenset(('view', '_unsafe_view', 't', 'transpose', 'permute', 'expand', 'slice', 'select',
                       'unsqueeze', 'squeeze', 'detach', 'alias', 'unfold', 'split', 'split_with_sizes',
                       'unbind', 'as_strided', 'lift_fresh', 'reshape'))

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split('.')[0] not in self.VIEWS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_ops(step: Callable[[], None]) -> int:
    """Dispatched non-view operators of one step."""
    with OpCounter() as counter:
        step()
    return counter.count


def time_steps(step: Callable[[], None], warmup: int, iters: int, device: str, clock: Clock) -> Dict:
    """Median seconds of ``step`` (device-synchronized) after ``warmup`` untimed calls;
    stops early when the deadline is near, never below 3 timed calls."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(torch.device(device))
    warmup_s = time.perf_counter() - t0
    times: List[float] = []
    while len(times) < iters and (len(times) < 3 or clock.left() > 2 * max(times)):
        t0 = time.perf_counter()
        step()
        sync(torch.device(device))
        times.append(time.perf_counter() - t0)
    return dict(median_s=statistics.median(times), min_s=min(times), times_s=times, warmup_s=warmup_s)


def encoder_flops(model_cfg: dict, size: int) -> int:
    """Forward FLOPs of the image encoder on one size² image (count_flops.py's counter),
    counted once per encoder and size."""
    return _encoder_flops(json.dumps(encoder_cfg(model_cfg, size), sort_keys=True), size)


@functools.lru_cache(maxsize=None)
def _encoder_flops(cfg_json: str, size: int) -> int:
    return int(count_encoder(json.loads(cfg_json), size)['flops'])
