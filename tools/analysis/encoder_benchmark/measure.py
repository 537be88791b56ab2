"""Building encoders and measuring one case: latency (every timing mode), peak memory, breakdown."""
from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import time
from typing import Callable, Dict, Optional, Tuple

import torch

from mmhrsam.apis.encoder_runner import EncoderRunner
from mmhrsam.registry import MODELS
from mmhrsam.utils.benchmark import capture_cuda_graph, sync, time_fn

from .breakdown import measure_breakdown
from .encoders import ENCODERS, num_tokens, tiny_cfg
from .modes import runner_method
from .planning import Case

MIB = 2 ** 20

def make_forward(model: torch.nn.Module, x: torch.Tensor, precision: str, device: torch.device,
                 autocast_cache: bool = True) -> Callable:
    """``fn()`` running one encoder forward on ``x`` (without grad, under autocast if asked)."""

    def fn():
        ctx = (torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=autocast_cache)
               if precision == 'autocast-bf16' else contextlib.nullcontext())
        with torch.no_grad(), ctx:
            return model(x)

    return fn


def on_default_device(fn: Callable, device: torch.device) -> Callable:
    """``fn`` run with ``device`` as the default device of factory calls without ``device=``
    (``torch.device`` as a context manager), so tensors a forward makes that way are created
    where they are used instead of being copied there from the host."""

    def wrapped():
        with torch.device(device):
            return fn()

    return wrapped


def allocated(device: torch.device) -> int:
    if device.type != 'cuda':
        return 0
    sync(device)
    return torch.cuda.memory_allocated(device)


def activation_peak_mib(fn: Callable, device: torch.device) -> Optional[float]:
    """max_memory_allocated during one ``fn()`` minus what was allocated before (MiB); None on CPU."""
    if device.type != 'cuda':
        return None
    base = allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return (torch.cuda.max_memory_allocated(device) - base) / MIB


def tensor_mib(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / MIB


def error_text(exc: BaseException, limit: int = 300) -> str:
    text = f'{type(exc).__name__}: {exc}'.replace('\n', ' ')
    return text[:limit] + ('...' if len(text) > limit else '')


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


class Runner:
    """Runs cases, keeping the last built model (encoders are size-independent, except SAM's).

    Each timing mode is measured by the method its ``modes.TIMING_MODES`` row names, called
    as ``method(row, model, x)``: it fills ``row`` (``ms``, ``ms_min``, ``repeats``, memory
    columns where measured) and raises on failure (the case becomes an ``error`` row).

    Args:
        args: the benchmark's finalized arguments.
        device: where the encoders run.
    """

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.args, self.device = args, device
        self.dtype = torch.bfloat16 if args.precision == 'bf16' else torch.float32
        self._key, self._model, self._build_s = None, None, 0.0
        self.failed: Dict[Tuple[str, int], str] = {}

    def config(self, name: str, size: int) -> dict:
        cfg = ENCODERS[name].cfg(size)
        return tiny_cfg(cfg) if self.args.tiny else cfg

    def model(self, name: str, size: int) -> Tuple[torch.nn.Module, float]:
        key = (name, size if ENCODERS[name].per_size else None)
        if key != self._key:
            self._key, self._model = None, None
            free_memory(self.device)
            t0 = time.perf_counter()
            cfg = self.config(name, size)
            try:  # initialize on the device directly (much faster for ViT-H)
                with torch.device(self.device):
                    model = MODELS.build(cfg)
            except Exception:  # noqa: BLE001  (some init code may not support a device context)
                model = MODELS.build(cfg)
            self._model = model.to(self.device, self.dtype).eval()
            sync(self.device)
            self._key, self._build_s = key, time.perf_counter() - t0
        return self._model, self._build_s

    def release(self) -> None:
        self._key, self._model = None, None
        free_memory(self.device)

    def make_input(self, size: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.args.seed + size)
        return torch.randn(1, 3, size, size, generator=gen).to(self.device, self.dtype)

    def base_row(self, case: Case) -> Dict:
        enc = ENCODERS[case.model]
        return dict(model=case.model, paper=enc.paper, type=self.config(case.model, case.size)['type'],
                    size=case.size, image=f'{case.size}x{case.size}', tokens=num_tokens(case.size), mode=case.mode,
                    device=self.device.type, precision=self.args.precision, status='ok', reason='', ms=None,
                    ms_min=None, repeats=0, params_m=None, weights_mib=None, input_mib=None, cache_mib=None,
                    act_peak_mib=None, peak_mib=None, build_s=None, compile_s=None)

    def run(self, case: Case) -> Dict:
        row = self.base_row(case)
        key = (case.model, case.size)
        if case.skip:
            row.update(status='skipped', reason=case.skip)
            return row
        if case.mode != 'eager' and key in self.failed:
            row.update(status='skipped', reason=f'eager run failed: {self.failed[key]}')
            return row
        try:
            model, build_s = self.model(case.model, case.size)
            params = list(model.parameters())
            row.update(build_s=round(build_s, 2), params_m=round(sum(p.numel() for p in params) / 1e6, 3),
                       weights_mib=round(tensor_mib(params + list(model.buffers())), 1))
            x = self.make_input(case.size)
            row['input_mib'] = round(tensor_mib([x]), 1)
            getattr(self, runner_method(case.mode))(row, model, x)
        except Exception as exc:  # noqa: BLE001  (OOM, capture or compile errors: record, go on)
            row.update(status='error', reason=error_text(exc))
            if case.mode == 'eager':
                self.failed[key] = row['reason']
            if self.device.type == 'cuda':
                with contextlib.suppress(Exception):
                    torch.cuda.synchronize(self.device)
        finally:
            free_memory(self.device)
        return row

    def _time(self, row: Dict, fn: Callable) -> None:
        a = self.args
        stats = time_fn(fn, self.device, a.warmup, a.repeats, a.case_budget_s, a.min_repeats)
        row.update(ms=round(stats['ms'], 4), ms_min=round(stats['ms_min'], 4), repeats=stats['repeats'])

    def _memory(self, row: Dict, fn: Callable, before_warmup: int) -> None:
        if self.device.type != 'cuda':
            return
        cache = max(0.0, (allocated(self.device) - before_warmup) / MIB)
        act = activation_peak_mib(fn, self.device)
        row.update(cache_mib=round(cache, 1), act_peak_mib=round(act, 1),
                   peak_mib=round(row['weights_mib'] + row['input_mib'] + cache + act, 1))

    # ------------------------------------------------ one method per modes.TIMING_MODES row
    def _run_eager(self, row: Dict, model, x) -> None:
        fn = make_forward(model, x, self.args.precision, self.device)
        before = allocated(self.device)
        self._time(row, fn)
        self._memory(row, fn, before)

    def _run_fast(self, row: Dict, model, x) -> None:
        torch._dynamo.reset()  # compile afresh for this size
        before = allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        precision = {'autocast-bf16': 'auto', 'bf16': 'bf16', 'fp32': 'fp32'}[self.args.precision]
        runner = EncoderRunner(model, self.device, precision=precision)
        t0 = time.perf_counter()
        runner(x)  # compiles and captures
        sync(self.device)
        row.update(compile_s=round(time.perf_counter() - t0, 2), fast_path=runner.mode)
        self._time(row, functools.partial(runner, x))
        # Everything the path holds beyond the model: its weight copy, the graph's memory
        # pool (the activations), the input and output buffers, at their peak.
        extra = (torch.cuda.max_memory_allocated(self.device) - before) / MIB
        row.update(act_peak_mib=round(extra, 1), peak_mib=round(row['weights_mib'] + row['input_mib'] + extra, 1))
        del runner
        torch._dynamo.reset()

    def _run_graph(self, row: Dict, model, x) -> None:
        # The weight casts must be captured in the graph, not served from the autocast cache.
        fn = make_forward(model, x, self.args.precision, self.device, autocast_cache=False)
        if ENCODERS[row['model']].host_factories:
            fn = on_default_device(fn, self.device)
        try:  # the side-stream warm-up builds index maps and other caches outside the capture
            graph, replay = capture_cuda_graph(fn, self.device)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f'CUDA graph capture failed: {error_text(exc)}') from exc
        try:
            self._time(row, replay)
        finally:
            del graph, replay

    def _run_compile(self, row: Dict, model, x) -> None:
        torch._dynamo.reset()  # compile afresh for this size
        compiled = torch.compile(model, dynamic=False)
        fn = make_forward(compiled, x, self.args.precision, self.device)
        before = allocated(self.device)
        t0 = time.perf_counter()
        fn()
        sync(self.device)
        row['compile_s'] = round(time.perf_counter() - t0, 2)
        self._time(row, fn)
        self._memory(row, fn, before)
        del compiled
        torch._dynamo.reset()

    def _run_breakdown(self, row: Dict, model, x) -> None:
        a = self.args
        fn = make_forward(model, x, a.precision, self.device)
        self._time(row, fn)  # the same forward without hooks (warm-up included)
        row['unhooked_ms'] = row['ms']
        row.update(measure_breakdown(model, fn, self.device, warmup=1, repeats=a.repeats, budget_s=a.case_budget_s,
                                     min_repeats=a.min_repeats))
        row.update(ms=row['total_ms'], ms_min=None, repeats=row['breakdown_repeats'])
