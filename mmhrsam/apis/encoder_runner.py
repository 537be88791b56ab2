"""Running an image encoder at inference speed: autocast precision, ``torch.compile`` and
CUDA-graph replay, one compiled graph and one captured CUDA graph per input shape.

The default on CUDA (``precision='auto'``, ``compile='auto'``, ``cuda_graph='auto'``) is the
fast path: bf16 autocast, the backbone compiled once per input shape (``fullgraph``, static
shapes; Inductor keeps its compiled kernels in its on-disk cache, so a later process reuses
them) and the compiled forward replayed from a CUDA graph. On CPU the default is the plain
fp32 eager forward, so CPU results do not change. Each step can be switched off, and a
compilation that fails under ``'auto'`` falls back to eager with one warning.

Why each step (HRSAM ViT-B, 2048², one H200, docs/benchmarks.md): eager bf16 autocast 26.0 ms;
compiled 14.0 ms (Inductor fuses the LayerNorm / GELU / RoPE / residual element-wise work
that eager runs as ~1,000 separate kernels); plus CUDA-graph replay 12.9 ms (no launch gaps).
"""
from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor, nn

from mmhrsam.utils.benchmark import capture_cuda_graph
from .compiled import CompiledOrEager, Switch, resolve_switch

PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def resolve_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype of ``precision`` on ``device`` (None: fp32, no autocast).

    ``'auto'`` is bf16 on CUDA and fp32 elsewhere; ``'bf16'``/``'fp16'`` on CPU are errors
    (the CPU reference path is fp32).
    """
    if precision == 'auto':
        precision = 'bf16' if device.type == 'cuda' else 'fp32'
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}")
    if precision != 'fp32' and device.type != 'cuda':
        raise ValueError(f'precision {precision!r} needs a CUDA device; the {device.type} path is fp32')
    return PRECISIONS[precision]


def cast_matmul_weights(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Store the weights of ``module``'s Linear and Conv2d layers in ``dtype`` (in place)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            layer.weight.data = layer.weight.data.to(dtype)
    return module


class EncoderRunner:
    """Call an image encoder the fast way for its device.

    Args:
        backbone (nn.Module): ``forward(img (B, 3, S, S))`` returning the embedding or a
            tuple whose last element is it; put in eval mode. After changing its weights,
            moving it or replacing parameters call :meth:`reset`.
        device (torch.device): where the backbone runs.
        precision (str): ``'auto'`` (bf16 autocast on CUDA, fp32 on CPU), ``'fp32'``,
            ``'bf16'`` or ``'fp16'`` (autocast dtypes; the caller's module is not changed).
        compile (str | bool): ``'auto'`` (on CUDA; falls back to eager with a warning if
            compilation fails), True (errors propagate) or False.
        cuda_graph (str | bool): ``'auto'`` (on CUDA), True or False: replay each input
            shape's forward from a captured CUDA graph. Its memory (the forward's
            activations) stays reserved per shape.
        max_shapes (int): input shapes kept captured at once (least recently used dropped).

    Under autocast the runner works on a copy of the backbone whose ``nn.Linear`` and
    ``nn.Conv2d`` weights are stored in the autocast dtype: autocast would cast them to it
    at every call (0.7 ms of 12.9 ms at 2048² on an H200), so the result is the same bit for
    bit. Biases, norms and other parameters keep their dtype. The copy is made at
    construction and by :meth:`reset`.
    """

    def __init__(self, backbone: nn.Module, device: torch.device, precision: str = 'auto',
                 compile: Switch = 'auto', cuda_graph: Switch = 'auto', max_shapes: int = 2):
        self.device = torch.device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        # reset() rebuilds it on the runner's backbone; a compilation that failed under 'auto' stays off
        self.step = CompiledOrEager(backbone, compile, resolve_switch(compile, 'compile', self.device), dynamic=False)
        self.use_graph = resolve_switch(cuda_graph, 'cuda_graph', self.device)
        if max_shapes < 1:
            raise ValueError(f'max_shapes must be >= 1, got {max_shapes}')
        self.max_shapes = max_shapes
        self.source = backbone.eval()
        self._lock = threading.Lock()  # the graphs' buffers are shared: one call at a time
        self.reset()

    def reset(self) -> None:
        """Forget compiled code and captured graphs and, under autocast, copy the backbone's
        weights again (call it after changing, moving or rebuilding the backbone)."""
        self.backbone = self.source
        if self.autocast_dtype is not None:
            self.backbone = cast_matmul_weights(copy.deepcopy(self.source), self.autocast_dtype)
        self.step = CompiledOrEager(self.backbone, self.step.mode, self.step.enabled, dynamic=False)
        self._warm: set = set()  # input shapes seen by an eager forward
        self._graphs: 'OrderedDict[Tuple, Tuple[Tensor, Callable, Tensor]]' = OrderedDict()

    @property
    def use_compile(self) -> bool:
        """Whether calls run the compiled backbone (False after a fallback to eager)."""
        return self.step.enabled

    @property
    def mode(self) -> str:
        """What a call runs: ``eager``, ``compile``, ``graph`` or ``compile+graph``."""
        parts = [p for p, on in (('compile', self.use_compile), ('graph', self.use_graph)) if on]
        return '+'.join(parts) or 'eager'

    # ------------------------------------------------------------------ forward
    def _run(self, x: Tensor, eager: bool = False) -> Tensor:
        forward = self.backbone if eager else self.step
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                             enabled=self.autocast_dtype is not None):
            out = forward(x)
        return out[-1] if isinstance(out, (tuple, list)) else out

    def _warm_up(self, x: Tensor) -> None:
        """One eager forward per new input shape before it is compiled: it builds the attention
        index maps and other per-size tables as plain cached tensors, which the compiled graph
        then reads as constants; traced cold, their data-dependent construction makes
        ``fullgraph`` compilation fail."""
        key = (tuple(x.shape), x.dtype)
        if self.use_compile and key not in self._warm:
            self._run(x, eager=True)
            self._warm.add(key)

    def _run_or_fall_back(self, x: Tensor) -> Tensor:
        self._warm_up(x)
        return self._run(x)  # self.step falls back to eager under compile='auto'

    def _graph_for(self, x: Tensor) -> Tuple[Tensor, Callable, Tensor]:
        key = (tuple(x.shape), x.dtype)
        if key in self._graphs:
            self._graphs.move_to_end(key)
            return self._graphs[key]
        while len(self._graphs) >= self.max_shapes:
            self._graphs.popitem(last=False)
        static_in = x.clone()
        self._run_or_fall_back(static_in)  # compile (or fall back) before capturing
        outputs = []
        _, replay = capture_cuda_graph(lambda: outputs.append(self._run(static_in)), self.device)
        self._graphs[key] = (static_in, replay, outputs[-1])
        return self._graphs[key]

    def __call__(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) normalized image -> (B, C, S/16, S/16) embedding (a new tensor)."""
        if not self.use_graph:
            return self._run_or_fall_back(x)
        with self._lock:
            static_in, replay, static_out = self._graph_for(x)
            static_in.copy_(x)
            replay()
            return static_out.clone()  # the next replay overwrites the graph's output
