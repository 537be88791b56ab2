"""CUDA-graph replay of the click step (prompt encoder + mask decoder) on an image embedding.

One click runs ~0.2 GFLOP through ~300 small kernels: launched one by one from Python it is
host-bound (about 6 ms per click at a 128² embedding on an H200, where the kernels take ~3 ms).
Replaying a captured graph removes the launch cost. SAM's decoder has no attention mask, so
click sets of different sizes cannot share a padded graph without changing the result: one
graph is captured per (embedding shape, number of clicks, mask prompt given or not), the
first time that key is seen; all graphs share one memory pool.
"""
from __future__ import annotations

import threading
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from mmhrsam.utils.benchmark import capture_cuda_graph


class HeadGraphs:
    """Replays ``head(features, points, labels, prev_logits)`` from CUDA graphs.

    Every call copies its embedding into the graphs' input buffer, so one instance serves any
    number of predictors (the annotation app's per-image copies share it); a lock makes
    concurrent calls from several threads take turns on the shared buffers.

    Args:
        head (nn.Module): a :class:`mmhrsam.models.heads.SAMHead` (or one with its forward
            contract) in eval mode on a CUDA device; free of host synchronizations.
        max_graphs (int): graphs kept at once; when full, all are dropped and recaptured
            on demand (an interactive session uses a few tens of click counts).
    """

    def __init__(self, head: nn.Module, max_graphs: int = 64):
        self.head = head
        self.max_graphs = max_graphs
        self._lock = threading.Lock()
        self._features: Dict[Tuple, Tensor] = {}  # (shape, dtype) -> static embedding buffer
        # (shape, dtype, clicks, mask prompt given) -> (static inputs, replay, outputs of the step)
        self._graphs: Dict[Tuple, tuple] = {}
        self._pool = None

    def _capture(self, features: Tensor, points: Tensor, labels: Tensor, prev: Optional[Tensor]) -> tuple:
        static_features = self._features.setdefault((tuple(features.shape), features.dtype), features.clone())
        inputs = dict(features=static_features, points=points.clone(), labels=labels.clone())
        if prev is not None:
            inputs['prev'] = prev.clone()
        if self._pool is None and features.is_cuda:
            self._pool = torch.cuda.graph_pool_handle()
        outputs = []

        def step():
            outputs.append(self.head(inputs['features'], inputs['points'], inputs['labels'], inputs.get('prev')))

        _, replay = capture_cuda_graph(step, features.device, pool=self._pool)
        return inputs, replay, outputs  # outputs[-1]: what the captured step wrote (see __call__)

    @torch.no_grad()
    def __call__(self, features: Tensor, points: Tensor, labels: Tensor, prev: Optional[Tensor]
                 ) -> Tuple[Tensor, Tensor]:
        """(1, C, h, w) embedding, (1, N, 2) points, (1, N) labels, optional (1, 1, 4h, 4w)
        previous logits -> low-resolution logits (1, 1, 4h, 4w) and IoU (1, 1), new tensors."""
        key = (tuple(features.shape), features.dtype, points.shape[1], prev is not None)
        with self._lock:
            if key not in self._graphs:
                if len(self._graphs) >= self.max_graphs:
                    self._graphs.clear()
                self._graphs[key] = self._capture(features, points, labels, prev)
            inputs, replay, outputs = self._graphs[key]
            inputs['features'].copy_(features)
            inputs['points'].copy_(points)
            inputs['labels'].copy_(labels)
            if prev is not None:
                inputs['prev'].copy_(prev)
            replay()
            # A replay rewrites the tensors the captured step returned (the last entry: the
            # warm-up runs before the capture appended theirs first).
            low_res, iou = outputs[-1]
            return low_res.clone(), iou.clone()
