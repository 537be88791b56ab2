"""SAM distillation (docs/architecture.md): the student's embedding regresses a stored teacher embedding."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmhrsam.registry import MODELS
from .interactive_sam import InteractiveSAM


@MODELS.register_module()
class SAMDistiller(InteractiveSAM):
    """MSE between the student's (B, 256, h, w) embedding and the teacher's stored one.

    Teacher embeddings are precomputed by ``tools/extract_teacher_embeddings.py`` on the
    same preprocessed image and loaded by the ``LoadTeacherEmbedding`` transform. A sample
    without one is an error (docs/architecture.md): nothing is recomputed or saved here.

    Args:
        backbone (dict): student image encoder config.
        head (dict): SAM head config (frozen by default: it only has to stay compatible).
        loss_weight (float): weight of the MSE.
        data_preprocessor (dict | nn.Module, optional): see :class:`InteractiveSAM`.
        frozen_modules (Sequence[str]): see :class:`InteractiveSAM`.
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict = dict(type='SAMHead'),
                 loss_weight: float = 1.0,
                 data_preprocessor: Union[dict, nn.Module, None] = None,
                 frozen_modules: Sequence[str] = ('head', ),
                 init_cfg: Optional[dict] = None):
        super().__init__(backbone, head, data_preprocessor, frozen_modules, init_cfg)
        self.loss_weight = float(loss_weight)

    @staticmethod
    def teacher_targets(data_samples: list, device: torch.device) -> Tensor:
        """(B, 256, h, w) float32 teacher embeddings; KeyError naming the image when one is missing."""
        missing = [s.metainfo.get('img_id', '?') for s in data_samples if 'teacher_embedding' not in s]
        if missing:
            raise KeyError(f'no teacher embedding for images {missing[:5]}: add LoadTeacherEmbedding to the '
                           'pipeline and run tools/extract_teacher_embeddings.py for this dataset')
        return torch.stack([torch.as_tensor(s.teacher_embedding) for s in data_samples]).to(device).float()

    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        target = self.teacher_targets(data_samples, inputs.device)
        student = self.extract_feat(inputs)
        if student.shape != target.shape:
            raise ValueError(f'student embedding {tuple(student.shape)} and teacher embedding '
                             f'{tuple(target.shape)} differ: train at the teacher\'s input size '
                             '(1024 for SAM) with the same padding')
        return dict(loss_distill=self.loss_weight * F.mse_loss(student.float(), target))
