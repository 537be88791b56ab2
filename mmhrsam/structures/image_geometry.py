"""Image and click geometry of the SAM-style input: resize-longest-side, padding, point
mapping and logits post-processing, shared by the predictor, the datasets and the click
evaluation (``docs/evaluation_protocol.md``). They follow segment_anything's ``SamPredictor``:

* **Resize**: the long side is resized to ``target_size`` keeping the aspect ratio; the
  output size is :func:`get_preprocess_shape` (segment_anything's
  ``ResizeLongestSide.get_preprocess_shape``: each side ``int(side * scale + 0.5)``). The
  resampling is ``F.interpolate(mode='bilinear', align_corners=False, antialias=True)`` on
  float32 intensities in [0, 255], without rounding back to uint8 — exactly
  ``ResizeLongestSide.apply_image_torch``. (``SamPredictor`` resizes with PIL on uint8;
  the two differ by PIL's rounding, about one intensity level.) No resampling happens when
  the long side already equals ``target_size``.
* **Channel order**: with ``bgr_input=True`` the RGB image is flipped to BGR before
  normalization, while the statistics stay in RGB order (the released HRSAM weights were
  trained that way).
* **Normalize**, then **zero-pad** right/bottom to a ``target_size`` x ``target_size``
  square (``target_size`` must be a multiple of 16).
* **Clicks** are mapped with :func:`map_points` (see there for the rounding rule).
* **Logits**: the head's low-resolution logits are upsampled (bilinear) to the padded
  square, cropped to the resized image, resized (bilinear) to the original size and
  thresholded at 0 — ``Sam.postprocess_masks`` with the actual padded size
  (:func:`postprocess_logits`).

``protocol='original'`` follows the original HRSAM implementation instead (how the released
weights were evaluated, docs/evaluation_protocol.md): :func:`preprocess_image_original`
(normalize, zero-pad to a multiple of 32, resize without antialiasing, zero-pad),
:func:`map_points_original` (``x * s``, no rounding) and :func:`postprocess_logits_original`
(back to the 32-padded size, then cropped).
"""
from __future__ import annotations

import warnings
from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: Side lengths of the padded input must be multiples of this (the ViT patch size).
SIZE_DIVISOR = 16
#: The original implementation pads the normalized image to a multiple of this first.
ORIGINAL_PAD_DIVISOR = 32
#: ``'exact'``: the project's pre/post-processing; ``'original'``: the original implementation's.
PROTOCOLS = ('exact', 'original')

ArrayLike = Union[np.ndarray, Sequence, Tensor]


# ---------------------------------------------------------------------- image
def as_rgb_image(image: np.ndarray) -> np.ndarray:
    """Check an image and bring it to an (H, W, 3) array of intensities in [0, 255].

    Accepted inputs:

    * shape (H, W) or (H, W, 1): grayscale, replicated to three channels;
      (H, W, 3): RGB; (H, W, 4): RGBA, the alpha channel is dropped;
    * dtype ``uint8``; ``uint16``, scaled to uint8 by ``round(v / 257)`` (65535 -> 255);
      floating point with values in [0, 255] (uint8 scale, used as they are, not rounded;
      a warning is given when all values are <= 1, which suggests a [0, 1]-scaled image).

    Args:
        image (np.ndarray): the image.

    Returns:
        np.ndarray: (H, W, 3) array, uint8 or float32.

    Raises:
        TypeError: ``image`` is not a numpy array.
        ValueError: other shapes, channel counts, dtypes, empty images, non-finite or
            out-of-range floating-point values.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f'image must be a numpy array (H, W, 3), got {type(image).__name__}')
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f'image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), '
                         f'got {image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f'image is empty: shape {image.shape}')
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float32, copy=False)
        if not np.isfinite(image).all():
            raise ValueError('floating-point image holds NaN or infinite values')
        low, high = float(image.min()), float(image.max())
        if low < 0 or high > 255:
            raise ValueError(f'floating-point images must hold values in [0, 255] (uint8 scale), '
                             f'got [{low:g}, {high:g}]')
        if 0 < high <= 1:
            warnings.warn('floating-point image has all values in [0, 1]; the predictor expects '
                          'the uint8 scale [0, 255]: multiply by 255 if it was normalized')
    elif image.dtype != np.uint8:
        raise ValueError(f'image dtype must be uint8, uint16 or floating point in [0, 255], '
                         f'got {image.dtype}')
    channels = image.shape[2]
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    elif channels == 4:
        image = image[..., :3]
    return image


def get_preprocess_shape(height: int, width: int, long_side: int) -> Tuple[int, int]:
    """(H, W) after resizing the long side to ``long_side`` (segment_anything's rule)."""
    scale = long_side * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def check_target_size(target_size: int) -> int:
    """``target_size`` as an int, or a ValueError when it is not a positive multiple of 16."""
    if int(target_size) != target_size or target_size <= 0 or target_size % SIZE_DIVISOR:
        raise ValueError(f'target_size must be a positive multiple of {SIZE_DIVISOR}, '
                         f'got {target_size}')
    return int(target_size)


def preprocess_image(image: np.ndarray,
                     target_size: int,
                     pixel_mean: Sequence[float],
                     pixel_std: Sequence[float],
                     bgr_input: bool = False,
                     device: Union[str, torch.device, None] = None,
                     dtype: torch.dtype = torch.float32) -> Tuple[Tensor, Tuple[int, int]]:
    """Resize, (flip,) normalize and pad an RGB image into the encoder input.

    Args:
        image (np.ndarray): (H, W, 3) RGB image, see :func:`as_rgb_image`.
        target_size (int): long side after resizing and side of the padded square.
        pixel_mean (Sequence[float]): per-channel mean (RGB order, applied in the order of
            the channels fed to the model).
        pixel_std (Sequence[float]): per-channel std.
        bgr_input (bool): flip the channels to BGR before normalizing.
        device (str | torch.device, optional): where to compute; CPU by default.
        dtype (torch.dtype): dtype of the returned tensor.

    Returns:
        tuple: the (1, 3, target_size, target_size) input and the resized (h, w) before padding.
    """
    image = as_rgb_image(image)
    target_size = check_target_size(target_size)
    height, width = image.shape[:2]
    new_h, new_w = get_preprocess_shape(height, width, target_size)
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    x = x.permute(2, 0, 1)[None].float()  # (1, 3, H, W) in [0, 255]
    if (new_h, new_w) != (height, width):
        x = F.interpolate(x, (new_h, new_w), mode='bilinear', align_corners=False, antialias=True)
    if bgr_input:
        x = x.flip(1)
    mean = torch.as_tensor(pixel_mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.as_tensor(pixel_std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    x = F.pad(x, (0, target_size - new_w, 0, target_size - new_h))  # zeros after normalizing
    return x.to(dtype), (new_h, new_w)


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of :data:`PROTOCOLS`, else a ValueError."""
    if protocol not in PROTOCOLS:
        raise ValueError(f'protocol must be one of {PROTOCOLS}, got {protocol!r}')
    return protocol


def preprocess_image_original(image: np.ndarray,
                              target_size: int,
                              pixel_mean: Sequence[float],
                              pixel_std: Sequence[float],
                              bgr_input: bool = False,
                              device: Union[str, torch.device, None] = None,
                              dtype: torch.dtype = torch.float32
                              ) -> Tuple[Tensor, Tuple[int, int], Tuple[int, int]]:
    """The original implementation's encoder input, step by step.

    (flip,) normalize; zero-pad right/bottom to multiples of 32, (H', W'); resize that to
    :func:`get_preprocess_shape` ``(H', W', target_size)`` with bilinear interpolation
    without antialiasing (``align_corners=False``); zero-pad to the square.

    Args:
        image, target_size, pixel_mean, pixel_std, bgr_input, device, dtype: as in
            :func:`preprocess_image`.

    Returns:
        tuple: the (1, 3, target_size, target_size) input, the resized (h, w) before the
        last padding and the 32-padded (H', W') the clicks and logits are mapped through.
    """
    image = as_rgb_image(image)
    target_size = check_target_size(target_size)
    height, width = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float()
    if bgr_input:
        x = x.flip(1)
    mean = torch.as_tensor(pixel_mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.as_tensor(pixel_std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    padded = (-(-height // ORIGINAL_PAD_DIVISOR) * ORIGINAL_PAD_DIVISOR,
              -(-width // ORIGINAL_PAD_DIVISOR) * ORIGINAL_PAD_DIVISOR)
    x = F.pad(x, (0, padded[1] - width, 0, padded[0] - height))
    new_h, new_w = get_preprocess_shape(*padded, target_size)
    if (new_h, new_w) != padded:
        x = F.interpolate(x, (new_h, new_w), mode='bilinear', align_corners=False, antialias=False)
    x = F.pad(x, (0, target_size - new_w, 0, target_size - new_h))
    return x.to(dtype), (new_h, new_w), padded


# ---------------------------------------------------------------------- clicks and logits
def map_points(points: np.ndarray, original_size: Tuple[int, int],
               input_size: Tuple[int, int]) -> np.ndarray:
    """Map clicks from the original image to pixel indices of the resized image.

    Coordinates are pixel indices in segment_anything's convention: pixel ``x`` covers
    [x, x + 1) and its centre is x + 0.5 (floats are fractional indices in the same
    convention). A click goes to the resized pixel that contains the mapped centre::

        x' = floor((x + 0.5) * new_w / W),   y' = floor((y + 0.5) * new_h / H)

    clipped to the resized image, i.e. the resized pixel nearest to the click's centre.
    The per-axis factors are those of ``ResizeLongestSide.apply_coords``. At scale 1 the
    clicks are unchanged (for integer clicks); the head then adds +0.5.

    Args:
        points (np.ndarray): (N, 2) clicks (x, y) in the original frame.
        original_size (tuple[int, int]): (H, W) of the original image.
        input_size (tuple[int, int]): (h, w) of the resized image (before padding).

    Returns:
        np.ndarray: (N, 2) int64 clicks (x', y') in the resized frame.
    """
    height, width = original_size
    new_h, new_w = input_size
    points = np.asarray(points, dtype=np.float64)
    x = np.floor((points[:, 0] + 0.5) * (new_w / width))
    y = np.floor((points[:, 1] + 0.5) * (new_h / height))
    x = np.clip(x, 0, new_w - 1)
    y = np.clip(y, 0, new_h - 1)
    return np.stack([x, y], axis=1).astype(np.int64)


def map_points_original(points: np.ndarray, padded_size: Tuple[int, int],
                        input_size: Tuple[int, int]) -> np.ndarray:
    """The original implementation's click mapping: ``x * new_w / W'``, ``y * new_h / H'``.

    No rounding and no pixel-centre shift here (the head adds +0.5 afterwards), computed in
    float32 as the original does (float32 coordinates times a factor rounded to float32).

    Args:
        points (np.ndarray): (N, 2) clicks (x, y) in the original frame.
        padded_size (tuple[int, int]): (H', W'), the image padded to multiples of 32.
        input_size (tuple[int, int]): (h, w) it was resized to.

    Returns:
        np.ndarray: (N, 2) float32 clicks (x', y') in the resized frame.
    """
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    scale = np.array([input_size[1] / padded_size[1], input_size[0] / padded_size[0]], dtype=np.float32)
    return points * scale


def postprocess_logits_original(low_res_logits: Tensor, input_size: Tuple[int, int], pad_size: int,
                                padded_size: Tuple[int, int], original_size: Tuple[int, int]) -> Tensor:
    """The original implementation's logits at the original size: :func:`postprocess_logits`
    to the 32-padded size (H', W'), then the (H, W) top-left crop."""
    x = postprocess_logits(low_res_logits, input_size, pad_size, padded_size)
    return x[..., :original_size[0], :original_size[1]]


def postprocess_logits(low_res_logits: Tensor, input_size: Tuple[int, int], pad_size: int,
                       original_size: Tuple[int, int]) -> Tensor:
    """Low-resolution logits (B, 1, h, w) -> logits (B, 1, H, W) at the original size.

    Bilinear upsampling to the padded square, crop of the resized image, bilinear resize
    to ``original_size`` (``Sam.postprocess_masks`` with ``pad_size`` for ``img_size``).
    """
    x = F.interpolate(low_res_logits.float(), (pad_size, pad_size), mode='bilinear',
                      align_corners=False)
    x = x[..., :input_size[0], :input_size[1]]
    return F.interpolate(x, tuple(original_size), mode='bilinear', align_corners=False)
