"""Timing helpers shared by the benchmarks in tools/analysis."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch


def sync(device: torch.device) -> None:
    """Wait for ``device``'s queued work (no-op on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_fn(fn: Callable, device: torch.device, warmup: int, repeats: int, budget_s: Optional[float] = None,
            min_repeats: int = 1) -> Dict:
    """Median milliseconds of ``fn()`` over at most ``repeats`` timed runs (CUDA events on
    CUDA, wall clock on CPU), device-synchronized, after at most ``warmup`` untimed runs.
    Warm-up and timing each stop early once they took ``budget_s`` (timing only after
    ``min_repeats`` runs).

    Returns:
        dict: ``ms`` (median), ``ms_min`` and ``repeats`` (runs timed).
    """
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
        sync(device)
        if budget_s is not None and time.perf_counter() - t0 > budget_s:
            break
    times: List[float] = []
    while len(times) < repeats:
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        if budget_s is not None and len(times) >= min_repeats and sum(times) > budget_s * 1e3:
            break
    return dict(ms=statistics.median(times), ms_min=min(times), repeats=len(times))


def capture_cuda_graph(fn: Callable, device: torch.device, side_warmup: int = 2, pool=None
                       ) -> Tuple[torch.cuda.CUDAGraph, Callable]:
    """Capture ``fn`` (after warm-up on a side stream); returns the graph and its replay.

    ``pool`` (``torch.cuda.graph_pool_handle()``) lets graphs that never run concurrently
    share their memory.
    """
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(side_warmup):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    torch.cuda.synchronize(device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        fn()
    torch.cuda.synchronize(device)
    return graph, graph.replay
