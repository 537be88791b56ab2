"""The baselines driven through the common session interface: segment_anything's
``SamPredictor`` (with a tiny ``Sam`` for --tiny) and sam2's ``SAM2ImagePredictor``."""
from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch

from .predictors import SAM_PRECISIONS
from .session import Session, build_on, encoder_context


def tiny_sam(size: int):
    """segment_anything's ``Sam`` with a 2-block, width-32 encoder and a width-32 decoder at a
    ``size``-pixel input (the code paths of SAM's predictor, at a fraction of the cost)."""
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)
    width, grid = 32, size // 16
    encoder = ImageEncoderViT(img_size=size, patch_size=16, embed_dim=width, depth=2, num_heads=2, mlp_ratio=4,
                              out_chans=width, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                              use_rel_pos=True, window_size=4, global_attn_indexes=(1,))
    prompt = PromptEncoder(embed_dim=width, image_embedding_size=(grid, grid), input_image_size=(size, size),
                           mask_in_chans=16)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer_dim=width, iou_head_depth=3, iou_head_hidden_dim=32,
                          transformer=TwoWayTransformer(depth=2, embedding_dim=width, mlp_dim=64, num_heads=2))
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder,
               pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


class SamSession(Session):
    """segment_anything's ``SamPredictor`` (``sam_model_registry[arch](checkpoint=None)``)."""

    def __init__(self, arch: str, size: int, precision: str, args: argparse.Namespace, device: torch.device):
        from segment_anything import SamPredictor, sam_model_registry
        build = partial(tiny_sam, size) if args.tiny else partial(sam_model_registry[arch], checkpoint=None)
        self.predictor = SamPredictor(build_on(device, build).eval())
        self.precision, self.device = precision, device
        self.outputs = dict(numpy='', tensor='')
        self.info = dict(precision=SAM_PRECISIONS[precision], options=dict(tensor_output='predict_torch'))

    def set_image(self, image: np.ndarray) -> None:
        with encoder_context(self.precision, self.device):
            self.predictor.set_image(image)

    def predict(self, points, labels, prev, output):
        p = self.predictor
        if output == 'numpy':
            masks, _, low_res = p.predict(point_coords=points, point_labels=labels, mask_input=prev,
                                          multimask_output=False)
            return masks[0], low_res
        coords = p.transform.apply_coords_torch(torch.as_tensor(points, dtype=torch.float, device=self.device),
                                                p.original_size)
        labels_t = torch.as_tensor(labels, dtype=torch.int, device=self.device)
        masks, _, low_res = p.predict_torch(coords[None], labels_t[None], mask_input=prev, multimask_output=False)
        return masks[0, 0], low_res


class Sam2Session(Session):
    """sam2's ``SAM2ImagePredictor`` on ``build_sam2(config, ckpt_path=None)`` (random weights)."""

    def __init__(self, config: str, precision: str, device: torch.device):
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        self.predictor = SAM2ImagePredictor(build_sam2(config, ckpt_path=None, device=str(device)))
        self.precision, self.device = precision, device
        self.outputs = dict(numpy='', tensor='SAM2ImagePredictor has no public GPU-tensor mask output')
        self.info = dict(precision=SAM_PRECISIONS[precision], options=dict(config=config))

    def set_image(self, image: np.ndarray) -> None:
        with encoder_context(self.precision, self.device):
            self.predictor.set_image(image)

    def predict(self, points, labels, prev, output):
        masks, _, low_res = self.predictor.predict(point_coords=points, point_labels=labels, mask_input=prev,
                                                   multimask_output=False)
        return masks[0], low_res
