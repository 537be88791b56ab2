"""Batch the packed samples: device, (BGR flip,) normalize, zero-pad, pad the gt masks.

Follows docs/architecture.md, "Training recipe", and :func:`mmhrsam.apis.predictor.preprocess_image`: normalization
with RGB statistics, optionally on BGR-ordered channels (``bgr_input``, the released
HRSAM weights), then zero padding right/bottom (zeros *after* normalization, as SAM).
Images arrive already resized (``ResizeLongestSide``): this module never resamples.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from mmhrsam.registry import MODELS

#: Value of padded mask pixels (ignored by the losses and metrics).
MASK_PAD_VALUE = 255


@MODELS.register_module()
class InteractiveDataPreprocessor(BaseDataPreprocessor):
    """Normalize and pad a batch of (3, H, W) uint8 RGB images and their gt masks.

    Args:
        mean (Sequence[float]): per-channel mean (RGB statistics).
        std (Sequence[float]): per-channel std.
        bgr_input (bool): flip RGB -> BGR before normalizing; the statistics are applied
            as given (the released weights were trained that way).
        pad_size (int, optional): pad every image to ``pad_size`` x ``pad_size`` (the
            model's square input, e.g. 1024); an image larger than that is an error.
            None: pad to the batch's largest height and width, rounded up to
            ``size_divisor``.
        size_divisor (int): padded sides are multiples of it when ``pad_size`` is None.
        non_blocking (bool): asynchronous host-to-device copies.
    """

    def __init__(self,
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 bgr_input: bool = False,
                 pad_size: Optional[int] = None,
                 size_divisor: int = 16,
                 non_blocking: bool = False):
        super().__init__(non_blocking=non_blocking)
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f'mean and std need 3 values each, std positive; got {mean}, {std}')
        if pad_size is not None and pad_size <= 0:
            raise ValueError(f'pad_size must be positive or None, got {pad_size}')
        if size_divisor <= 0:
            raise ValueError(f'size_divisor must be positive, got {size_divisor}')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(3, 1, 1), False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(3, 1, 1), False)
        self.bgr_input = bool(bgr_input)
        self.pad_size = pad_size
        self.size_divisor = int(size_divisor)

    def padded_shape(self, shapes: Sequence[Tuple[int, int]]) -> Tuple[int, int]:
        """(Hp, Wp) of a batch of (H, W) image shapes."""
        max_h, max_w = max(s[0] for s in shapes), max(s[1] for s in shapes)
        if self.pad_size is not None:
            if max_h > self.pad_size or max_w > self.pad_size:
                raise ValueError(f'image of size {max_h}x{max_w} (HxW) does not fit pad_size '
                                 f'{self.pad_size}x{self.pad_size}: resize it first '
                                 '(ResizeLongestSide)')
            return self.pad_size, self.pad_size
        d = self.size_divisor
        return -(-max_h // d) * d, -(-max_w // d) * d

    def normalize(self, img: Tensor) -> Tensor:
        """(3, H, W) uint8/float RGB -> float32 normalized (channels flipped if bgr_input)."""
        if img.dim() != 3 or img.shape[0] != 3:
            raise ValueError(f'expected a (3, H, W) image, got {tuple(img.shape)}')
        x = img.float()
        if self.bgr_input:
            x = x.flip(0)
        return (x - self.mean) / self.std

    def forward(self, data: dict, training: bool = False) -> dict:
        """Args:
            data (dict): ``inputs`` (list of (3, H, W) tensors or a (B, 3, H, W) tensor)
                and ``data_samples`` (list of :class:`InteractiveDataSample`, optional).
            training (bool): unused (no batch augmentation).

        Returns:
            dict: ``inputs`` (B, 3, Hp, Wp) float32 on the device and ``data_samples``
            with ``gt_mask`` padded to (1, Hp, Wp) with 255 and ``pad_shape`` set.
        """
        data = self.cast_data(data)
        images: Union[List[Tensor], Tensor] = data['inputs']
        samples = data.get('data_samples')
        images = list(images)  # a stacked batch iterates as samples too
        pad_h, pad_w = self.padded_shape([tuple(img.shape[-2:]) for img in images])
        batch = torch.stack([
            F.pad(self.normalize(img), (0, pad_w - img.shape[-1], 0, pad_h - img.shape[-2]))
            for img in images])  # (B, 3, Hp, Wp), zeros after normalization
        if samples is not None:
            for img, sample in zip(images, samples):
                self._pad_sample(sample, tuple(img.shape[-2:]), (pad_h, pad_w))
        return dict(inputs=batch, data_samples=samples)

    @staticmethod
    def _pad_sample(sample, img_hw: Tuple[int, int], pad_hw: Tuple[int, int]) -> None:
        sample.set_metainfo(dict(pad_shape=pad_hw))
        if 'gt_mask' not in sample:
            return
        mask = sample.gt_mask  # (1, H, W)
        if tuple(mask.shape[-2:]) != img_hw:
            raise ValueError(f'gt_mask of size {tuple(mask.shape[-2:])} does not match its image '
                             f'{img_hw} (img_id {sample.metainfo.get("img_id")})')
        sample.gt_mask = F.pad(mask, (0, pad_hw[1] - img_hw[1], 0, pad_hw[0] - img_hw[0]),
                               value=MASK_PAD_VALUE)
