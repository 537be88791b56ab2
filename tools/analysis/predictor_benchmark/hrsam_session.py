"""``HRSAMPredictor`` (HRSAM / HRSAM++) driven through the common session interface."""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from encoder_benchmark.encoders import tiny_cfg  # the encoder benchmark's tiny encoders

from mmhrsam.registry import MODELS

from . import predictors
from .session import Session, build_on


class HRSAMSession(Session):
    """``HRSAMPredictor`` built from a config's backbone and head (random weights).

    The predictor class is looked up in :mod:`.predictors` at build time (tests substitute it).
    """

    def __init__(self, config: str, size: int, args: argparse.Namespace, device: torch.device):
        from mmengine.config import Config
        cfg = Config.fromfile(os.path.join(predictors.ROOT, config))
        backbone_cfg, head_cfg = dict(cfg.model['backbone']), dict(cfg.model['head'])
        if args.tiny:  # narrow head matching the tiny encoder's 32 output channels
            backbone_cfg = tiny_cfg(backbone_cfg)
            head_cfg.update(embed_dim=backbone_cfg['out_channels'], decoder_mlp_dim=64, decoder_num_heads=2,
                            iou_head_hidden_dim=32)
        have = predictors.hrsam_predictor_options()
        options = {}
        if args.hrsam_precision is not None:
            options['precision'] = args.hrsam_precision
        if args.hrsam_compile is not None:
            options['compile'] = {'on': True, 'off': False}.get(args.hrsam_compile, args.hrsam_compile)
        if args.hrsam_decoder_precision is not None:
            options['decoder_precision'] = args.hrsam_decoder_precision
        geometry = {k: v for k, v in dict(cfg.get('predictor') or {}).items() if k != 'target_size'}
        backbone = build_on(device, lambda: MODELS.build(backbone_cfg))
        head = build_on(device, lambda: MODELS.build(head_cfg))
        self.predictor = predictors.HRSAMPredictor(backbone, head, target_size=size, device=device, **geometry,
                                                   **options)
        self.return_numpy = have['return_numpy']
        self.outputs = dict(numpy='', tensor='' if have['return_numpy'] else
                            'HRSAMPredictor.predict has no return_numpy option in this checkout')
        resolved = {k: str(getattr(self.predictor, k)) for k in ('precision', 'compile', 'decoder_precision')
                    if hasattr(self.predictor, k)}
        self.info = dict(precision=resolved.get('precision', 'predictor default' if have['precision'] else
                                                'fp32 (predictor without a precision option)'),
                         options=dict(available=have, passed=options, resolved=resolved))

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    def predict(self, points, labels, prev, output):
        kwargs = dict(return_numpy=output == 'numpy') if self.return_numpy else {}
        mask, logits, _ = self.predictor.predict(points, labels, prev, **kwargs)
        return mask, logits
