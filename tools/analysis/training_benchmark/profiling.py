"""``torch.profiler`` over a few steps: launches, synchronizations and copies per step, top-15 tables."""
from __future__ import annotations

from typing import Callable, Dict

import torch

from mmhrsam.utils.benchmark import sync

#: The host-side calls that wait for the device.
SYNC_CALLS = ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize')


def start_profiler(device: str):
    """A started profiler of host activity (and device activity on CUDA)."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith('cuda') else [])
    prof = profile(activities=activities)
    prof.start()
    return prof


def summarize_profile(prof, steps: int, device: str) -> Dict:
    """Per-step launch / sync / copy counts and top-15 tables of a stopped profiler."""
    names = [event.name for event in prof.events()]

    def per_step(test: Callable[[str], bool]) -> float:
        return sum(1 for name in names if test(name)) / steps

    counts = dict(kernel_launches=per_step(lambda n: n.startswith(('cudaLaunchKernel', 'cuLaunchKernel'))),
                  synchronizations=per_step(lambda n: n in SYNC_CALLS),
                  stream_synchronizations=per_step(lambda n: n == 'cudaStreamSynchronize'),
                  memcpy_calls=per_step(lambda n: n.startswith('cudaMemcpy')))
    averages = prof.key_averages()
    keys = (['self_device_time_total'] if device.startswith('cuda') else []) + ['self_cpu_time_total']
    return dict(per_step=counts, tables={key: averages.table(sort_by=key, row_limit=15) for key in keys})


def profile_steps(step: Callable[[], None], steps: int, device: str) -> Dict:
    """:func:`summarize_profile` of ``steps`` calls of ``step``."""
    prof = start_profiler(device)
    for _ in range(steps):
        step()
    sync(torch.device(device))
    prof.stop()
    return summarize_profile(prof, steps, device)
