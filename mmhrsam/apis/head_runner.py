"""Running the click step (prompt encoder + mask decoder) at interactive speed.

On CUDA (the defaults) the head is compiled once with the number of clicks as a dynamic
dimension and replayed from a CUDA graph per (embedding shape, number of clicks, mask prompt
given or not); its fp32 matrix products use TF32 tensor cores, and the dense positional
encoding is computed once per image by the caller instead of at every click. SAM's decoder
has no attention mask, so click sets of different sizes cannot share one padded graph without
changing the result; all graphs share one memory pool.

Why each step (HRSAM's head at a 128² embedding, 5 clicks and a mask prompt, one H200, GPU
time per click, docs/benchmarks.md): kernels replayed from a CUDA graph 2.52 ms (launched one
by one from Python the step was host-bound at ~6 ms); prompt-to-image product split over key
chunks (:mod:`mmhrsam.models.heads.long_key_attention`, was 0.86 ms) and the dense encoding's
resize in channels-last (was 0.28 ms) 1.79 ms; compiled (Inductor fuses the element-wise
work over the 16384 image tokens) 1.21 ms; TF32 products 0.94 ms.
"""
from __future__ import annotations

import threading
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from mmhrsam.utils.benchmark import capture_cuda_graph
from .compiled import CompiledOrEager, Switch, float32_matmul_precision, resolve_switch

#: ``decoder_precision`` -> ``torch.set_float32_matmul_precision`` value for the head's products.
DECODER_PRECISIONS = {'fp32': 'highest', 'tf32': 'high'}


def resolve_decoder_precision(precision: str, device: torch.device) -> str:
    """``'auto'`` is TF32 products on CUDA and fp32 elsewhere; ``'tf32'`` needs CUDA."""
    if precision == 'auto':
        precision = 'tf32' if device.type == 'cuda' else 'fp32'
    if precision not in DECODER_PRECISIONS:
        raise ValueError(f"decoder_precision must be 'auto', 'fp32' or 'tf32', got {precision!r}")
    if precision == 'tf32' and device.type != 'cuda':
        raise ValueError(f"decoder_precision 'tf32' needs a CUDA device; the {device.type} path is fp32")
    return precision


class HeadRunner:
    """Calls ``head(features, points, labels, prev_logits)`` the fast way for its device.

    Every call copies its embedding into the graphs' input buffer, so one runner serves any
    number of predictors (the annotation app's per-image copies share one); a lock makes
    concurrent calls take turns on the shared buffers.

    Args:
        head (nn.Module): a :class:`mmhrsam.models.heads.SAMHead` (or one with its forward
            contract) in eval mode; free of host synchronizations when graphs are used.
        device (torch.device): where the head runs.
        compile (str | bool): ``'auto'`` (on CUDA; falls back to eager with a warning),
            True or False. One compilation serves every number of clicks >= 2 (1 is
            specialized), so a session compiles at most four graphs (one click or several,
            with or without a mask prompt); :meth:`warm_up` makes the two a session
            starts with.
        cuda_graph (str | bool): ``'auto'`` (on CUDA), True or False.
        decoder_precision (str): ``'auto'`` (``'tf32'`` on CUDA, ``'fp32'`` elsewhere),
            ``'fp32'`` (IEEE fp32 products) or ``'tf32'`` (fp32 tensors and accumulation,
            products on TF32 tensor cores, as PyTorch's default already does for the
            decoder's convolutions).
        max_graphs (int): graphs kept at once; when full, all are dropped and recaptured on
            demand (an interactive session uses a few tens of click counts).
    """

    def __init__(self, head: nn.Module, device: torch.device, compile: Switch = 'auto',
                 cuda_graph: Switch = 'auto', decoder_precision: str = 'auto', max_graphs: int = 64):
        self.head = head
        self.device = torch.device(device)
        self.use_graph = resolve_switch(cuda_graph, 'cuda_graph', self.device)
        self.step = CompiledOrEager(head, compile, resolve_switch(compile, 'compile', self.device), dynamic=None)
        self.decoder_precision = resolve_decoder_precision(decoder_precision, self.device)
        if max_graphs < 1:
            raise ValueError(f'max_graphs must be >= 1, got {max_graphs}')
        self.max_graphs = max_graphs
        self._lock = threading.Lock()
        self._images: Dict[Tuple, Tuple[Tensor, Tensor]] = {}  # (shape, dtype) -> static (embedding, dense PE)
        # (shape, dtype, clicks, mask prompt given) -> (static inputs, replay, outputs of the step)
        self._graphs: Dict[Tuple, tuple] = {}
        self._warm: set = set()
        self._pool = None

    @property
    def mode(self) -> str:
        """What a call runs: ``eager``, ``compile``, ``graph`` or ``compile+graph``."""
        parts = [p for p, on in (('compile', self.step.enabled), ('graph', self.use_graph)) if on]
        return '+'.join(parts) or 'eager'

    def _run(self, features: Tensor, image_pe: Tensor, points: Tensor, labels: Tensor, prev: Optional[Tensor]
             ) -> Tuple[Tensor, Tensor]:
        # The click count varies: one compiled graph for all counts >= 2 instead of one each.
        torch._dynamo.maybe_mark_dynamic(points, 1)
        torch._dynamo.maybe_mark_dynamic(labels, 1)
        with float32_matmul_precision(DECODER_PRECISIONS[self.decoder_precision]):
            return self.step(features, points, labels, prev, None, image_pe)

    def _capture(self, features: Tensor, image_pe: Tensor, points: Tensor, labels: Tensor,
                 prev: Optional[Tensor]) -> tuple:
        static_features, static_pe = self._images.setdefault((tuple(features.shape), features.dtype),
                                                             (features.clone(), image_pe.clone()))
        inputs = dict(features=static_features, image_pe=static_pe, points=points.clone(), labels=labels.clone())
        if prev is not None:
            inputs['prev'] = prev.clone()
        if self._pool is None and features.is_cuda:
            self._pool = torch.cuda.graph_pool_handle()
        outputs = []

        def step():
            outputs.append(self._run(inputs['features'], inputs['image_pe'], inputs['points'], inputs['labels'],
                                     inputs.get('prev')))

        _, replay = capture_cuda_graph(step, features.device, pool=self._pool)
        return inputs, replay, outputs  # outputs[-1]: what the captured step wrote (see _replay)

    def _replay(self, features: Tensor, image_pe: Tensor, points: Tensor, labels: Tensor, prev: Optional[Tensor]
                ) -> Tuple[Tensor, Tensor]:
        key = (tuple(features.shape), features.dtype, points.shape[1], prev is not None)
        if key not in self._graphs:
            if len(self._graphs) >= self.max_graphs:
                self._graphs.clear()
            self._graphs[key] = self._capture(features, image_pe, points, labels, prev)
        inputs, replay, outputs = self._graphs[key]
        inputs['features'].copy_(features)
        inputs['image_pe'].copy_(image_pe)
        inputs['points'].copy_(points)
        inputs['labels'].copy_(labels)
        if prev is not None:
            inputs['prev'].copy_(prev)
        replay()
        # A replay rewrites the tensors the captured step returned (the last entry: the
        # warm-up runs before the capture appended theirs first).
        low_res, iou = outputs[-1]
        return low_res.clone(), iou.clone()

    @torch.no_grad()
    def __call__(self, features: Tensor, image_pe: Tensor, points: Tensor, labels: Tensor, prev: Optional[Tensor]
                 ) -> Tuple[Tensor, Tensor]:
        """(1, C, h, w) embedding, its (1, C, h, w) dense positional encoding
        (``head.dense_pe``), (1, N, 2) points, (1, N) labels, optional (1, 1, 4h, 4w) previous
        logits -> low-resolution logits (1, 1, 4h, 4w) and IoU (1, 1), new tensors."""
        with self._lock:
            if self.use_graph:
                return self._replay(features, image_pe, points, labels, prev)
            return self._run(features, image_pe, points, labels, prev)

    def warm_up(self, features: Tensor, image_pe: Tensor) -> None:
        """Compile (and capture) the steps a session starts with, once per embedding shape:
        one click without a mask prompt, then two clicks with one, so that the user's first
        clicks do not wait for the compiler. No-op when not compiling."""
        key = (tuple(features.shape), features.dtype)
        if not self.step.enabled or key in self._warm:
            return
        h, w = features.shape[-2:]
        prev = features.new_zeros(1, 1, 4 * h, 4 * w)
        for clicks, mask_prompt in ((1, None), (2, prev)):
            points = features.new_zeros(1, clicks, 2, dtype=torch.float32)
            labels = torch.ones(1, clicks, dtype=torch.long, device=features.device)
            self(features, image_pe, points, labels, mask_prompt)
        self._warm.add(key)
