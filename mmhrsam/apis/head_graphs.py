"""CUDA-graph replay of the click step (prompt encoder + mask decoder) on a fixed embedding.

One click runs ~0.2 GFLOP through ~300 small kernels: launched one by one from Python it is
host-bound (about 6 ms per click at a 128² embedding on an H200, where the kernels take ~1.5 ms).
Replaying a captured graph removes the launch cost. SAM's decoder has no attention mask, so
click sets of different sizes cannot share a padded graph without changing the result: one
graph is captured per (number of clicks, mask prompt given or not), the first time that key
is seen for the current embedding shape; all graphs share one memory pool.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from mmhrsam.utils.benchmark import capture_cuda_graph


class HeadGraphs:
    """Replays ``head(features, points, labels, prev_logits)`` from CUDA graphs.

    Args:
        head (nn.Module): a :class:`mmhrsam.models.heads.SAMHead` (or one with its forward
            contract) in eval mode on a CUDA device; free of host synchronizations.
        max_graphs (int): graphs kept at once; when full, all are dropped and recaptured
            on demand (an interactive session uses a few tens of click counts).
    """

    def __init__(self, head: nn.Module, max_graphs: int = 64):
        self.head = head
        self.max_graphs = max_graphs
        self.features: Optional[Tensor] = None
        # (clicks, mask prompt given) -> (static inputs, replay, static outputs, graph)
        self._graphs: Dict[Tuple[int, bool], tuple] = {}
        self._pool = None

    def bind(self, features: Tensor) -> None:
        """Use ``features`` (1, C, h, w) for the next calls (copied into the graphs' input)."""
        if self.features is not None and self.features.shape == features.shape \
                and self.features.dtype == features.dtype and self.features.device == features.device:
            self.features.copy_(features)
            return
        self._graphs.clear()
        self._pool = torch.cuda.graph_pool_handle()
        self.features = features.clone()

    def _capture(self, points: Tensor, labels: Tensor, prev: Optional[Tensor]):
        inputs = dict(points=points.clone(), labels=labels.clone())
        if prev is not None:
            inputs['prev'] = prev.clone()
        outputs = []

        def step():
            outputs.append(self.head(self.features, inputs['points'], inputs['labels'], inputs.get('prev')))

        graph, replay = capture_cuda_graph(step, self.features.device, pool=self._pool)
        return inputs, replay, outputs[-1], graph

    @torch.no_grad()
    def __call__(self, points: Tensor, labels: Tensor, prev: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """(1, N, 2) points, (1, N) labels, optional (1, 1, 4h, 4w) previous logits ->
        low-resolution logits (1, 1, 4h, 4w) and IoU (1, 1), fresh tensors."""
        if self.features is None:
            raise RuntimeError('HeadGraphs.bind(features) must be called first')
        key = (points.shape[1], prev is not None)
        if key not in self._graphs:
            if len(self._graphs) >= self.max_graphs:
                self._graphs.clear()
            self._graphs[key] = self._capture(points, labels, prev)
        inputs, replay, (low_res, iou), _ = self._graphs[key]
        inputs['points'].copy_(points)
        inputs['labels'].copy_(labels)
        if prev is not None:
            inputs['prev'].copy_(prev)
        replay()
        return low_res.clone(), iou.clone()
