"""The model behind the server: one backbone + head, many predictors sharing it."""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Optional, Union

import torch

from mmhrsam.apis.predictor import HRSAMPredictor
from mmhrsam.utils.checkpoint import load_checkpoint_file


def resolve_device(device: str) -> torch.device:
    """``'auto'`` -> CUDA when available, else CPU; other names as given (checked)."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    resolved = torch.device(device)
    if resolved.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {device}: CUDA is not available on this machine')
    return resolved


@dataclass
class SharedModel:
    """A loaded predictor whose model new predictors share (one embedding each).

    Attributes:
        base (HRSAMPredictor): the predictor built from the config.
        description (str): what runs, for ``/api/health`` and the page.
        warning (str | None): shown on the page and logged (e.g. random weights).
    """

    base: HRSAMPredictor
    description: str
    warning: Optional[str] = None

    def new_predictor(self) -> HRSAMPredictor:
        """A predictor on the same modules, options and device, with its own embedding slot.

        A shallow copy shares the modules and keeps every option of the base (whatever
        options the predictor grows); ``set_image`` only ever rebinds the copy's own
        embedding attributes, so copies never see each other's images.
        """
        predictor = copy.copy(self.base)
        predictor.reset_image()
        return predictor


def load_shared_model(config: str, checkpoint: Optional[str], device: Union[str, torch.device],
                      allow_pickle: bool = False) -> SharedModel:
    """Build the config's backbone + head and load ``checkpoint`` (random weights when None).

    Args:
        config (str): config file with ``model=dict(backbone=..., head=...)``.
        checkpoint (str, optional): checkpoint file (strict loading, see
            :meth:`HRSAMPredictor.from_config`).
        device (str | torch.device): where the model runs.
        allow_pickle (bool): unpickle the checkpoint fully (MMEngine training checkpoints);
            trusted files only.
    """
    loaded = None
    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
        loaded = load_checkpoint_file(checkpoint, allow_pickle=allow_pickle)
    base = HRSAMPredictor.from_config(config, checkpoint=loaded, device=device)
    name = os.path.basename(config)
    if checkpoint is None:
        return SharedModel(base, f'{name} (random weights)',
                           warning=f'No checkpoint: {name} runs with RANDOM weights, its masks are '
                           'meaningless. Pass --checkpoint (or run the quickstart first).')
    return SharedModel(base, f'{name} + {os.path.basename(checkpoint)}')
