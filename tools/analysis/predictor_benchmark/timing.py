"""Timing: one synchronized call, one click pass, profiled device time, per-click statistics."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from mmhrsam.utils.benchmark import sync

from .session import Session


def timed(fn: Callable, device: torch.device) -> Tuple[object, float, Optional[float]]:
    """``fn()``'s result, wall milliseconds (device synchronized before and after) and the
    CUDA-event span around it (None on CPU)."""
    cuda = device.type == 'cuda'
    sync(device)
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    t0 = time.perf_counter()
    out = fn()
    if cuda:
        end.record()
    sync(device)
    wall = (time.perf_counter() - t0) * 1e3
    return out, wall, start.elapsed_time(end) if cuda else None


def click_pass(session: Session, points: np.ndarray, labels: np.ndarray, output: str,
               device: torch.device) -> Tuple[List[float], List[Optional[float]]]:
    """One click sequence on the image set: call k gets clicks [0, k] and call k - 1's logits.

    Returns:
        tuple: wall ms per call, CUDA-event ms per call.
    """
    prev, walls, spans = None, [], []
    for k in range(len(points)):
        (_, prev), wall, span = timed(
            lambda k=k, prev=prev: session.predict(points[:k + 1], labels[:k + 1], prev, output), device)
        walls.append(wall)
        spans.append(span)
    return walls, spans


def device_ms(fn: Callable, device: torch.device) -> Optional[Dict[str, float]]:
    """Device time of ``fn()`` from the torch profiler: ``kernels`` (kernels and memsets) and
    ``copies`` (memcpy, e.g. a mask copied to the host), summed milliseconds; None on CPU or
    when the profiler records no device activity."""
    if device.type != 'cuda':
        return None
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        sync(device)
    totals = dict(kernels=0.0, copies=0.0)
    for event in prof.events():
        if event.device_type == DeviceType.CUDA:
            part = 'copies' if event.name.lower().startswith('memcpy') else 'kernels'
            totals[part] += event.time_range.elapsed_us() / 1e3
    return totals if sum(totals.values()) > 0 else None


def summarize(walls: List[List[float]], spans: List[List[Optional[float]]], set_ms: List[float]) -> Dict:
    """Per-click statistics of one output kind over the timed images.

    Args:
        walls (list): per image, the wall ms of each click.
        spans (list): per image, the CUDA-event ms of each click (None on CPU).
        set_ms (list): per image, the ``set_image`` wall ms.
    """
    flat = [t for w in walls for t in w]
    flat_spans = [t for s in spans for t in s if t is not None]
    clicks = len(walls[0])
    spc = [(s + sum(w)) / clicks for s, w in zip(set_ms, walls)]
    return dict(status='ok', reason='', median_ms=round(statistics.median(flat), 4),
                p90_ms=round(float(np.percentile(flat, 90)), 4), mean_ms=round(statistics.fmean(flat), 4),
                n=len(flat), gpu_span_median_ms=round(statistics.median(flat_spans), 4) if flat_spans else None,
                spc_ms=round(statistics.median(spc), 4), click_ms_all=[[round(t, 4) for t in w] for w in walls])
