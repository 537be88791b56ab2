"""SAM's prompt encoder and mask decoder as an interactive-segmentation head (docs/architecture.md).

The modules are segment_anything's own (:class:`PromptEncoder`, :class:`MaskDecoder`,
:class:`TwoWayTransformer`), built with the hyper-parameters of ``_build_sam``, so the
official weights load unchanged (``head.prompt_encoder.*``, ``head.mask_decoder.*``).
This head only adapts them to embeddings of any grid size:

* the dense positional encoding of an (h, w) embedding is, by ``dense_pe``, either
  computed on that grid (``'grid'``: ``prompt_encoder.pe_layer((h, w))``) or computed on the
  training grid ``image_size / stride`` (64x64 for SAM and HRSAM) and resized bilinearly to
  (h, w) (``'resize'``: what the released HRSAM / HRSAM++ models were run with at every
  input size). Both equal segment_anything's ``get_dense_pe()`` on the training grid;
* click coordinates are normalised by the actual input size (16h, 16w) instead of the
  fixed ``prompt_encoder.input_image_size``, without mutating the prompt encoder;
* the decoder's attention layers compute the prompt-to-image product split over key
  chunks (:mod:`.long_key_attention`): same parameters, same result up to fp32 rounding.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import Tensor

from mmhrsam.registry import MODELS
from .long_key_attention import use_long_key_attention


@MODELS.register_module()
class SAMHead(BaseModule):
    """SAM prompt encoder + mask decoder, single-mask output, any embedding grid.

    Coordinate convention: callers pass click positions as (x, y) pixel indices in the
    frame of the resized, padded encoder input (the same values one would pass to
    ``SamPredictor.predict_torch``); **the head adds +0.5** to move them to pixel centres,
    exactly like segment_anything's ``PromptEncoder._embed_points``. Callers must not add it.

    A pad point (label -1) is always appended, as segment_anything does when no box is
    given (this head takes no boxes). Labels -1 in the input mark padding clicks (used to
    batch samples with different click counts); they get ``not_a_point_embed``.

    Args:
        embed_dim (int): prompt/decoder width, 256 in SAM.
        image_size (int): nominal encoder input size used to build the upstream modules
            (1024 in SAM); inputs of other sizes are handled at run time.
        stride (int): encoder input pixels per embedding cell (16 for ViT patch 16).
        mask_in_chans (int): hidden channels of the mask-prompt downscaling.
        decoder_depth (int): TwoWayTransformer depth.
        decoder_mlp_dim (int): TwoWayTransformer MLP width.
        decoder_num_heads (int): TwoWayTransformer heads.
        num_multimask_outputs (int): multimask tokens of the decoder (only token 0, the
            single-mask output, is used, but the weights hold all of them).
        iou_head_depth (int): layers of the IoU prediction MLP.
        iou_head_hidden_dim (int): width of the IoU prediction MLP.
        dense_pe (str): dense positional encoding of grids other than the training grid
            ``image_size // stride``: ``'grid'`` computes it on the embedding's grid;
            ``'resize'`` computes it on the training grid and resizes it to the embedding's
            grid (``F.interpolate``, bilinear, ``align_corners=False``, no antialiasing), as
            the original HRSAM implementation does; set it for the released weights and for
            models trained at the training grid and run at other sizes.
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self,
                 embed_dim: int = 256,
                 image_size: int = 1024,
                 stride: int = 16,
                 mask_in_chans: int = 16,
                 decoder_depth: int = 2,
                 decoder_mlp_dim: int = 2048,
                 decoder_num_heads: int = 8,
                 num_multimask_outputs: int = 3,
                 iou_head_depth: int = 3,
                 iou_head_hidden_dim: int = 256,
                 dense_pe: str = 'grid',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if dense_pe not in ('grid', 'resize'):
            raise ValueError(f"dense_pe must be 'grid' or 'resize', got {dense_pe!r}")
        self.stride = stride
        self.dense_pe_mode = dense_pe
        grid = image_size // stride
        self.train_grid = (grid, grid)
        self.prompt_encoder = PromptEncoder(
            embed_dim=embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=mask_in_chans)
        self.mask_decoder = MaskDecoder(
            num_multimask_outputs=num_multimask_outputs,
            transformer=TwoWayTransformer(
                depth=decoder_depth, embedding_dim=embed_dim, mlp_dim=decoder_mlp_dim,
                num_heads=decoder_num_heads),
            transformer_dim=embed_dim,
            iou_head_depth=iou_head_depth,
            iou_head_hidden_dim=iou_head_hidden_dim)
        # Same parameters; the prompt-to-image products are split over keys (see the module).
        use_long_key_attention(self.mask_decoder.transformer)

    # ------------------------------------------------------------------ prompts
    def dense_pe(self, grid: Tuple[int, int]) -> Tensor:
        """Dense positional encoding (1, C, h, w) of an ``grid`` = (h, w) embedding (see ``dense_pe``)."""
        grid = tuple(grid)
        if self.dense_pe_mode == 'grid' or grid == self.train_grid:
            return self.prompt_encoder.pe_layer(grid).unsqueeze(0)
        pe = self.prompt_encoder.pe_layer(self.train_grid).unsqueeze(0)  # (1, C, 64, 64) for SAM
        if pe.is_cuda:
            # CUDA's NCHW bilinear kernel loops over the 256 channels in every thread (0.28 ms
            # per click at a 128² grid on an H200); its channels-last kernel computes the same
            # interpolation in parallel over them (docs/benchmarks.md: with the split attention,
            # the click's kernels fell from 2.52 to 1.79 ms). Kept NCHW on the CPU, whose
            # kernels round differently.
            pe = pe.contiguous(memory_format=torch.channels_last)
        return F.interpolate(pe, grid, mode='bilinear', align_corners=False)

    def embed_points(self, points: Tensor, labels: Tensor, input_size: Tuple[int, int]) -> Tensor:
        """Sparse embeddings of clicks plus the trailing pad point.

        Equal to ``PromptEncoder._embed_points(points, labels, pad=True)`` with
        ``input_image_size = input_size``, but with ``torch.where`` and a gather instead of
        boolean-mask writes, so there is no host sync (friendly to CUDA graphs/compile).

        Args:
            points (Tensor): (B, N, 2) click (x, y) pixel indices, without the +0.5.
            labels (Tensor): (B, N) 1 positive, 0 negative, -1 padding.
            input_size (tuple[int, int]): (H, W) of the encoder input the coordinates live in.

        Returns:
            Tensor: (B, N + 1, C) sparse prompt embeddings.
        """
        pe = self.prompt_encoder
        batch = points.shape[0]
        points = points.float() + 0.5  # pixel centres, as upstream
        points = torch.cat([points, points.new_zeros(batch, 1, 2)], dim=1)  # (B, N+1, 2)
        labels = torch.cat([labels.long(), labels.new_full((batch, 1), -1, dtype=torch.long)], dim=1)
        coords_pe = pe.pe_layer.forward_with_coords(points, input_size)  # (B, N+1, C)
        # Embedding table indexed by label + 1: -1 -> not-a-point, 0 -> negative, 1 -> positive.
        table = torch.cat([pe.not_a_point_embed.weight, pe.point_embeddings[0].weight,
                           pe.point_embeddings[1].weight], dim=0)  # (3, C)
        is_pad = (labels == -1).unsqueeze(-1)  # (B, N+1, 1); pad points carry no position
        return torch.where(is_pad, torch.zeros_like(coords_pe), coords_pe) + table[labels + 1]

    def embed_mask(self, prev_logits: Optional[Tensor], grid: Tuple[int, int], batch: int,
                   prev_valid: Optional[Tensor] = None) -> Tensor:
        """Dense prompt embedding (B, C, h, w) of the previous low-resolution logits.

        Args:
            prev_logits (Tensor, optional): (B, 1, 4h, 4w) raw logits of the previous
                step; None means no mask prompt (``no_mask_embed`` everywhere).
            grid (tuple[int, int]): (h, w) of the image embedding.
            batch (int): B, used when ``prev_logits`` is None.
            prev_valid (Tensor, optional): (B,) bool; samples marked False use
                ``no_mask_embed`` although ``prev_logits`` is given (mixed batches where some
                samples are at their first click).
        """
        h, w = grid
        pe = self.prompt_encoder
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        if prev_logits is None:
            return no_mask
        if tuple(prev_logits.shape) != (batch, 1, 4 * h, 4 * w):
            raise ValueError(f'prev_logits must have shape {(batch, 1, 4 * h, 4 * w)} for a '
                             f'{h}x{w} embedding, got {tuple(prev_logits.shape)}')
        dense = pe.mask_downscaling(prev_logits)  # (B, C, h, w)
        if prev_valid is not None:
            dense = torch.where(prev_valid.reshape(-1, 1, 1, 1), dense, no_mask)
        return dense

    # ------------------------------------------------------------------ forward
    def forward(self,
                image_embeddings: Tensor,
                points: Tensor,
                labels: Tensor,
                prev_logits: Optional[Tensor] = None,
                prev_valid: Optional[Tensor] = None,
                image_pe: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Predict one mask per prompt set.

        Args:
            image_embeddings (Tensor): (B, C, h, w) encoder output, or (1, C, h, w) shared
                by all B prompt sets (segment_anything's native layout).
            points (Tensor): (B, N, 2) float click (x, y) pixel indices in the resized,
                padded input frame of size (stride*h, stride*w); the head adds +0.5.
            labels (Tensor): (B, N) int, 1 positive, 0 negative, -1 padding.
            prev_logits (Tensor, optional): (B, 1, 4h, 4w) previous raw low-res logits,
                fed as the mask prompt.
            prev_valid (Tensor, optional): (B,) bool, see :meth:`embed_mask`.
            image_pe (Tensor, optional): (1, C, h, w) ``self.dense_pe((h, w))`` computed once by
                a caller that decodes many clicks on one embedding; None computes it here.

        Returns:
            tuple[Tensor, Tensor]: low-res logits (B, 1, 4h, 4w) and IoU prediction (B, 1)
            of the single-mask output (mask token 0).
        """
        num_images, _, h, w = image_embeddings.shape
        batch = points.shape[0]
        if num_images not in (1, batch):
            raise ValueError(f'{num_images} image embeddings for {batch} prompt sets')
        sparse = self.embed_points(points, labels, (self.stride * h, self.stride * w))
        dense = self.embed_mask(prev_logits, (h, w), batch, prev_valid)
        if image_pe is None:
            image_pe = self.dense_pe((h, w))  # (1, C, h, w)
        if num_images == 1:
            return self.mask_decoder(image_embeddings, image_pe, sparse, dense, multimask_output=False)
        # MaskDecoder repeats one image over every prompt set (B x B pairs for B images).
        # Pairing image i with prompt set i in one batched call: its input is
        # ``image + dense``, so the per-sample images go into the dense term and the shared
        # image is zero (one decoder call instead of B: B times fewer kernel launches).
        zero_image = image_embeddings.new_zeros((1, ) + tuple(image_embeddings.shape[1:]))
        return self.mask_decoder(zero_image, image_pe, sparse, image_embeddings + dense,
                                 multimask_output=False)
