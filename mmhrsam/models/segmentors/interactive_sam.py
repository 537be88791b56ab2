"""An image encoder plus SAM's prompt encoder and mask decoder: the interactive model."""
from __future__ import annotations

from typing import Optional, Tuple

from mmengine.model import BaseModule
from torch import Tensor

from mmhrsam.registry import MODELS, build_model


@MODELS.register_module()
class InteractiveSAM(BaseModule):
    """Any registered image encoder (HRSAM, HRSAM++, SAM's ViTs) followed by :class:`SAMHead`.

    The encoder runs once per image (:meth:`extract_feat`); each click runs only the head
    (:meth:`decode`), feeding back the previous low-resolution logits. Its state dict is
    ``backbone.*`` and ``head.*``, the layout the checkpoint converters write.

    Args:
        backbone (dict): image encoder config; its ``forward`` returns a tuple whose last
            element is the (B, 256, h, w) embedding.
        head (dict): SAM head config.
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self, backbone: dict, head: dict = dict(type='SAMHead'), init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.backbone = build_model(backbone)
        self.head = build_model(head)

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """(B, 3, H, W) normalized, padded images -> (B, 256, H/16, W/16) embeddings."""
        return self.backbone(inputs)[-1]

    def decode(self, embeddings: Tensor, points: Tensor, labels: Tensor,
               prev_logits: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """One click step: low-res logits (B, 1, 4h, 4w) and IoU prediction (B, 1).

        Args:
            embeddings (Tensor): (B, 256, h, w) from :meth:`extract_feat`.
            points (Tensor): (B, N, 2) (x, y) pixel indices in the padded input frame.
            labels (Tensor): (B, N) 1 positive, 0 negative, -1 padding.
            prev_logits (Tensor, optional): (B, 1, 4h, 4w) logits of the previous step.
        """
        return self.head(embeddings, points, labels, prev_logits)

    def forward(self, inputs: Tensor, points: Tensor, labels: Tensor,
                prev_logits: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Encoder and one decoder step."""
        return self.decode(self.extract_feat(inputs), points, labels, prev_logits)
