"""Per-part timing of one eager forward: attention, MLP, Cycle-scan, embedding, fusion.

Intervals are recorded around submodules (forward pre/post hooks) or around methods the
backbone calls directly (instance wrappers), with CUDA events on CUDA and the wall clock on
the CPU, and summed after one synchronize per forward.
"""
from __future__ import annotations

import re
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

import torch

from mmhrsam.utils.benchmark import sync

BREAKDOWN_PARTS = ('attention', 'mlp', 'cycle_scan', 'embed', 'fusion')
#: The parts must cover the hooked forward's total within this fraction.
COVERAGE_TOLERANCE = 0.10


class PartRecorder:
    """Intervals per part: CUDA events (no synchronization while recording) or wall clock."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == 'cuda'
        self.intervals: Dict[str, list] = defaultdict(list)

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def elapsed_ms(self, start, end) -> float:
        return start.elapsed_time(end) if self.cuda else (end - start) * 1e3

    def add(self, part: str, start, end) -> None:
        self.intervals[part].append((start, end))

    def collect(self) -> Dict[str, float]:
        """Milliseconds per part since the last collect (one synchronize)."""
        sync(self.device)
        sums = {part: sum(self.elapsed_ms(s, e) for s, e in spans) for part, spans in self.intervals.items()}
        self.intervals.clear()
        return sums


def part_targets(model: torch.nn.Module) -> List[Tuple[str, torch.nn.Module, Optional[str]]]:
    """(part, module, method) to time: ``method`` is wrapped on the instance when the
    backbone calls it directly (``embed_inputs``, HRSAM++'s ``fuse_scales``), else (None)
    the module gets forward pre/post hooks (attention and Cycle-scan modules are called as modules). No target nests
    inside another, so the parts never double-count."""
    targets = []
    for name, module in model.named_modules():
        if re.fullmatch(r'blocks\.\d+\.attn', name):
            targets.append(('attention', module, None))
        elif re.fullmatch(r'blocks\.\d+\.(mlp|norm1|norm2)', name):
            targets.append(('mlp', module, None))
        elif re.fullmatch(r'(mamba_blocks|ss_mamba_blocks|ms_mamba_blocks)\.\d+', name):
            targets.append(('cycle_scan', module, None))
        elif re.fullmatch(r'lateral_convs\.\d+|out_conv|neck', name):
            targets.append(('fusion', module, None))
        elif name == 'patch_embed' and not hasattr(model, 'embed_inputs'):
            targets.append(('embed', module, None))  # SAM: PatchEmbed is called as a module
    if hasattr(model, 'embed_inputs'):  # HRSAM: patch embedding, pos-embed (and HRSAM++'s anchor map)
        targets.append(('embed', model, 'embed_inputs'))
    if hasattr(model, 'fuse_scales'):  # HRSAM++: split, anchor upsampling, shared LN, concat
        targets.append(('fusion', model, 'fuse_scales'))
    return targets


def instrument(model: torch.nn.Module, recorder: PartRecorder) -> Callable[[], None]:
    """Start recording part intervals; returns the function that removes the instrumentation."""
    undo = []
    for part, module, method in part_targets(model):
        if method is not None:
            original = getattr(module, method)
            shadowed = method in module.__dict__

            def wrapped(*args, _part=part, _fn=original, **kwargs):
                start = recorder.mark()
                out = _fn(*args, **kwargs)
                recorder.add(_part, start, recorder.mark())
                return out

            object.__setattr__(module, method, wrapped)
            undo.append((lambda m=module, n=method, o=original, s=shadowed:
                         object.__setattr__(m, n, o) if s else object.__delattr__(m, n)))
        else:
            stack = []
            pre = module.register_forward_pre_hook(lambda mod, inp, _s=stack: _s.append(recorder.mark()))
            post = module.register_forward_hook(
                lambda mod, inp, out, _s=stack, _part=part: recorder.add(_part, _s.pop(), recorder.mark()))
            undo += [pre.remove, post.remove]

    def remove():
        for fn in reversed(undo):
            fn()

    return remove


def measure_breakdown(model: torch.nn.Module, fn: Callable, device: torch.device, warmup: int, repeats: int,
                      budget_s: Optional[float] = None, min_repeats: int = 1) -> Dict:
    """Per-part milliseconds of ``fn()`` (one forward of ``model``) in the pass of median total."""
    recorder = PartRecorder(device)
    remove = instrument(model, recorder)
    try:
        t0 = time.perf_counter()
        for _ in range(warmup):
            fn()
            recorder.collect()
            if budget_s is not None and time.perf_counter() - t0 > budget_s:
                break
        passes: List[Tuple[float, Dict[str, float]]] = []
        while len(passes) < repeats:
            start = recorder.mark()
            fn()
            end = recorder.mark()
            sums = recorder.collect()  # synchronizes, so ``end`` has completed
            passes.append((recorder.elapsed_ms(start, end), {p: sums.get(p, 0.0) for p in BREAKDOWN_PARTS}))
            if budget_s is not None and len(passes) >= min_repeats and sum(t for t, _ in passes) > budget_s * 1e3:
                break
    finally:
        remove()
    # The pass of median total (the lower one for an even count): its parts and total belong together.
    total, parts = sorted(passes, key=lambda p: p[0])[(len(passes) - 1) // 2]
    return summarize_breakdown(total, parts, len(passes))


def summarize_breakdown(total_ms: float, parts: Dict[str, float], repeats: int = 1) -> Dict:
    """Shares, rest (= embed + fusion), what no part covers, and the coverage check."""
    measured = sum(parts.values())
    coverage = measured / total_ms if total_ms > 0 else float('nan')
    return dict(
        total_ms=round(total_ms, 4),
        parts_ms={p: round(v, 4) for p, v in parts.items()},
        shares={p: round(v / total_ms, 4) for p, v in parts.items()},
        rest_ms=round(parts.get('embed', 0.0) + parts.get('fusion', 0.0), 4),
        measured_ms=round(measured, 4),
        unaccounted_ms=round(total_ms - measured, 4),
        coverage=round(coverage, 4),
        coverage_ok=bool(abs(1 - coverage) <= COVERAGE_TOLERANCE),
        breakdown_repeats=repeats)
