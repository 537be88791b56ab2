"""The interface every predictor is driven through, and helpers its drivers share."""
from __future__ import annotations

import contextlib
from typing import Callable, Dict

import numpy as np
import torch


def build_on(device: torch.device, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """``build()`` with ``device`` as the default device (much faster for ViT-H on a GPU), or
    on the CPU where some init code does not support that; then moved to ``device``."""
    try:
        with torch.device(device):
            module = build()
    except Exception:  # noqa: BLE001  (init code that needs CPU tensors)
        module = build()
    return module.to(device)


def encoder_context(precision: str, device: torch.device):
    """bf16 autocast (CUDA) around a baseline's ``set_image``, or nothing."""
    if precision == 'bf16':
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Session:
    """One predictor behind a common interface: ``set_image`` and ``predict`` per output kind.

    Attributes:
        outputs (dict): output kind -> '' (supported) or why it is not.
        info (dict): precision and options, stored in the row.
    """
    outputs: Dict[str, str]
    info: Dict

    def set_image(self, image: np.ndarray) -> None:
        raise NotImplementedError

    def predict(self, points: np.ndarray, labels: np.ndarray, prev, output: str):
        """Returns (mask, logits to feed back)."""
        raise NotImplementedError
