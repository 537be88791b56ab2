"""An image encoder plus SAM's prompt encoder and mask decoder: the interactive model."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmhrsam.registry import MODELS, build_model


@MODELS.register_module()
class InteractiveSAM(BaseModel):
    """Any registered image encoder (HRSAM, HRSAM++, SAM's ViTs) followed by :class:`SAMHead`.

    The encoder runs once per image (:meth:`extract_feat`); each click runs only the head
    (:meth:`decode`), feeding back the previous low-resolution logits. Its state dict is
    ``backbone.*`` and ``head.*``, the layout the checkpoint converters write. Training
    objectives are subclasses (:class:`ClickSegmentor`, :class:`SAMDistiller`); evaluation
    with the click protocol is :class:`mmhrsam.evaluation.ClickTestLoop`, which calls
    :meth:`extract_feat` and :meth:`decode` directly.

    Args:
        backbone (dict): image encoder config; its ``forward`` returns a tuple whose last
            element is the (B, 256, h, w) embedding.
        head (dict): SAM head config.
        data_preprocessor (dict | nn.Module, optional): normalization, channel order and
            padding (``InteractiveDataPreprocessor``); None uses MMEngine's plain one.
        frozen_modules (Sequence[str]): names of sub-modules (``'head'``,
            ``'backbone.out_conv'``, ...) whose parameters get ``requires_grad=False`` and
            which stay in eval mode during training.
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict = dict(type='SAMHead'),
                 data_preprocessor: Union[dict, nn.Module, None] = None,
                 frozen_modules: Sequence[str] = (),
                 init_cfg: Optional[dict] = None):
        if isinstance(data_preprocessor, dict):
            # Built here, in mmhrsam's scope: BaseModel would look in MMEngine's root registry.
            data_preprocessor = build_model(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = build_model(backbone)
        self.head = build_model(head)
        self.frozen_modules = tuple(frozen_modules)
        for name in self.frozen_modules:
            for param in self.get_submodule(name).parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> 'InteractiveSAM':
        super().train(mode)
        for name in self.frozen_modules:  # frozen parts keep their eval behaviour (dropout, ...)
            self.get_submodule(name).eval()
        return self

    # ------------------------------------------------------------------ building blocks
    def extract_feat(self, inputs: Tensor) -> Tensor:
        """(B, 3, H, W) normalized, padded images -> (B, 256, H/16, W/16) embeddings."""
        out = self.backbone(inputs)
        return out[-1] if isinstance(out, (tuple, list)) else out

    def decode(self, embeddings: Tensor, points: Tensor, labels: Tensor,
               prev_logits: Optional[Tensor] = None,
               prev_valid: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """One click step: low-res logits (B, 1, 4h, 4w) and IoU prediction (B, 1).

        Args:
            embeddings (Tensor): (B, 256, h, w) from :meth:`extract_feat`.
            points (Tensor): (B, N, 2) (x, y) pixel indices in the padded input frame.
            labels (Tensor): (B, N) 1 positive, 0 negative, -1 padding.
            prev_logits (Tensor, optional): (B, 1, 4h, 4w) logits of the previous step.
            prev_valid (Tensor, optional): (B,) bool; False where a sample has no previous
                logits yet (mixed batches).
        """
        return self.head(embeddings, points, labels, prev_logits, prev_valid)

    @staticmethod
    def upsample_logits(low_res_logits: Tensor, size: Tuple[int, int]) -> Tensor:
        """(B, 1, 4h, 4w) -> (B, 1, H, W) logits in the padded input frame (bilinear)."""
        return F.interpolate(low_res_logits.float(), size, mode='bilinear', align_corners=False)

    # ------------------------------------------------------------------ MMEngine API
    def forward(self, inputs: Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Union[Tensor, Dict[str, Tensor], list]:
        """``mode='tensor'``: embeddings; ``'loss'``: :meth:`loss` of the training subclass;
        ``'predict'``: not defined here (the click protocol drives the model step by step)."""
        if mode == 'tensor':
            return self.extract_feat(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            raise RuntimeError(f'{type(self).__name__} predicts through the click protocol: use '
                               "test_cfg=dict(type='ClickTestLoop') (mmhrsam.evaluation) instead of "
                               'the default ValLoop/TestLoop')
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        raise NotImplementedError(f'{type(self).__name__} has no training objective: use '
                                  "type='ClickSegmentor' or type='SAMDistiller'")
