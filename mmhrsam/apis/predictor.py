"""A SAM-style click predictor: set an image once, then predict a mask per click set.

Pre- and post-processing follow SPEC §5/§6 and segment_anything's ``SamPredictor``:

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

import math
import os
import warnings
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmhrsam.registry import MODELS
from mmhrsam.utils.checkpoint import load_checkpoint_file, load_model_weights

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


# ---------------------------------------------------------------------- predictor
class HRSAMPredictor:
    """Interactive segmentation with an image encoder and a :class:`SAMHead`.

    ``set_image`` runs the encoder once and caches the embedding; every ``predict`` runs
    only the prompt encoder and mask decoder on it. Both modules are put in eval mode (and
    moved to ``device`` when one is given).

    Example::

        predictor = HRSAMPredictor(backbone, head, target_size=2048, bgr_input=True)
        predictor.set_image(rgb_uint8)
        masks, logits, score = predictor.predict([[120, 40]], [1])
        masks, logits, score = predictor.predict([[120, 40], [300, 90]], [1, 0], logits)

    Args:
        backbone (nn.Module): image encoder, ``forward(img (B, 3, S, S)) -> tuple`` whose
            last element (or the returned tensor itself) is the (B, 256, S/16, S/16) embedding.
        head (nn.Module): :class:`mmhrsam.models.heads.SAMHead` or one with its contract.
        target_size (int): long side after resizing and side of the padded square input; a
            multiple of 16. ``set_image`` may override it per image.
        pixel_mean (Sequence[float]): normalization mean (RGB statistics).
        pixel_std (Sequence[float]): normalization std.
        bgr_input (bool): feed the model BGR-ordered channels (flip before normalizing);
            True for the released HRSAM weights. Images given to ``set_image`` are RGB.
        device (str | torch.device, optional): where to run; by default the device of the
            backbone's parameters.
        protocol (str): ``'exact'`` (the project's pre/post-processing and click mapping) or
            ``'original'`` (the original implementation's, see the module docstring).
    """

    def __init__(self,
                 backbone: nn.Module,
                 head: nn.Module,
                 target_size: int = 2048,
                 pixel_mean: Sequence[float] = (123.675, 116.28, 103.53),
                 pixel_std: Sequence[float] = (58.395, 57.12, 57.375),
                 bgr_input: bool = False,
                 device: Union[str, torch.device, None] = None,
                 protocol: str = 'exact'):
        if len(pixel_mean) != 3 or len(pixel_std) != 3:
            raise ValueError('pixel_mean and pixel_std need 3 values each')
        if any(s <= 0 for s in pixel_std):
            raise ValueError(f'pixel_std must be positive, got {tuple(pixel_std)}')
        self.target_size = check_target_size(target_size)
        self.pixel_mean = tuple(float(v) for v in pixel_mean)
        self.pixel_std = tuple(float(v) for v in pixel_std)
        self.bgr_input = bool(bgr_input)
        self.protocol = check_protocol(protocol)
        param = next(backbone.parameters(), None)
        if device is None:
            device = param.device if param is not None else 'cpu'
        self.device = torch.device(device)
        # Input dtype follows the backbone (e.g. a half-precision model on the GPU).
        self.dtype = param.dtype if param is not None else torch.float32
        self.backbone = backbone.to(self.device).eval()
        self.head = head.to(self.device).eval()
        self.reset_image()

    # ------------------------------------------------------------------ building
    @classmethod
    def from_config(cls, config, checkpoint=None, device: Union[str, torch.device, None] = None
                    ) -> 'HRSAMPredictor':
        """Build the backbone and head of a config and load a checkpoint.

        Args:
            config (str | dict | mmengine.Config): a config (file) with
                ``model=dict(backbone=..., head=..., ...)``; other ``model`` keys are
                ignored. An optional top-level ``predictor=dict(...)`` gives the
                constructor's ``target_size``, ``pixel_mean``, ``pixel_std``, ``bgr_input``,
                ``protocol``.
            checkpoint (str | dict, optional): a checkpoint file or an already loaded
                checkpoint in the project's layout (``backbone.*``, ``head.*``, possibly
                under ``'state_dict'``/``'model'`` or with a DDP ``module.`` prefix) or in the
                released HRSAM / HRSAM++ layout (converted on load, as by
                ``tools/model_converters/hrsam_release_to_mmhrsam.py``), loaded strictly: any
                missing or extra key is an error. Files are read with
                ``weights_only`` loading; training checkpoints with pickled objects can be
                passed as a dict loaded by the caller. When None, ``init_weights()`` runs
                on a module where an ``init_cfg`` is set (e.g. ``Pretrained``); otherwise
                the weights are those of construction (random).
            device (str | torch.device, optional): where to run; CPU by default.
        """
        from mmengine.config import Config
        if isinstance(config, (str, os.PathLike)):
            config = Config.fromfile(os.fspath(config))
        elif not isinstance(config, Config):
            config = Config(dict(config))
        model_cfg = config.get('model')
        if model_cfg is None or 'backbone' not in model_cfg or 'head' not in model_cfg:
            raise ValueError('config needs model=dict(backbone=..., head=...)')
        backbone = MODELS.build(model_cfg['backbone'])
        head = MODELS.build(model_cfg['head'])
        if checkpoint is None:
            for module in (backbone, head):
                # Only where some init_cfg asks for it (e.g. Pretrained): init_weights() of
                # an MMEngine top-level module otherwise just logs every parameter.
                if any(getattr(m, 'init_cfg', None) for m in module.modules()):
                    module.init_weights()
        else:
            load_predictor_weights(backbone, head, checkpoint)
        options = dict(config.get('predictor') or {})
        allowed = {'target_size', 'pixel_mean', 'pixel_std', 'bgr_input', 'protocol'}
        unknown = set(options) - allowed
        if unknown:
            raise ValueError(f'unknown predictor options {sorted(unknown)}; allowed: {sorted(allowed)}')
        return cls(backbone, head, device=device, **options)

    # ------------------------------------------------------------------ image
    @property
    def is_image_set(self) -> bool:
        """Whether ``set_image`` has cached an embedding."""
        return self.features is not None

    def reset_image(self) -> None:
        """Drop the cached embedding and image geometry."""
        self.features: Optional[Tensor] = None
        self.original_size: Optional[Tuple[int, int]] = None
        self.input_size: Optional[Tuple[int, int]] = None
        self.pad_size: Optional[int] = None
        self.padded_size: Optional[Tuple[int, int]] = None  # 32-padded (H', W'), 'original' only

    @torch.no_grad()
    def set_image(self, image: np.ndarray, target_size: Optional[int] = None) -> None:
        """Preprocess ``image`` and cache its embedding (one encoder pass).

        Args:
            image (np.ndarray): (H, W, 3) RGB uint8 image; grayscale, RGBA, uint16 and
                [0, 255] float images are accepted too (see :func:`as_rgb_image`).
            target_size (int, optional): overrides the predictor's ``target_size`` for
                this image.
        """
        self.reset_image()
        pad_size = check_target_size(self.target_size if target_size is None else target_size)
        args = (image, pad_size, self.pixel_mean, self.pixel_std, self.bgr_input, self.device, self.dtype)
        if self.protocol == 'original':
            x, input_size, self.padded_size = preprocess_image_original(*args)
        else:
            x, input_size = preprocess_image(*args)
        self.backbone.eval()
        out = self.backbone(x)
        features = out[-1] if isinstance(out, (tuple, list)) else out
        if features.dim() != 4 or features.shape[0] != 1:
            raise RuntimeError(f'backbone returned an embedding of shape {tuple(features.shape)}, '
                               'expected (1, C, h, w)')
        self.features = features
        self.original_size = tuple(image.shape[:2])  # validated by preprocess_image
        self.input_size = input_size
        self.pad_size = pad_size

    # ------------------------------------------------------------------ prompts
    def _check_points(self, points: ArrayLike, labels: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
        points = np.asarray(points.cpu() if isinstance(points, Tensor) else points, dtype=np.float64)
        labels = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)
        if points.size == 0 and labels.size == 0:
            return points.reshape(0, 2), labels.reshape(0).astype(np.int64)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f'points must have shape (N, 2) of (x, y), got {points.shape}')
        if labels.shape != (points.shape[0],):
            raise ValueError(f'labels must have shape ({points.shape[0]},), got {labels.shape}')
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f'labels must be 1 (positive) or 0 (negative), got {np.unique(labels)}')
        height, width = self.original_size
        inside = (np.isfinite(points).all(axis=1) & (points[:, 0] >= 0) & (points[:, 0] < width)
                  & (points[:, 1] >= 0) & (points[:, 1] < height))
        if not inside.all():
            raise ValueError(f'points {points[~inside].tolist()} lie outside the {width}x{height} '
                             '(W x H) image')
        return points, labels.astype(np.int64)

    def _check_prev_logits(self, prev_logits: Optional[ArrayLike]) -> Optional[Tensor]:
        if prev_logits is None:
            return None
        prev = torch.as_tensor(prev_logits)
        h, w = self.features.shape[-2:]
        expected = (1, 1, 4 * h, 4 * w)
        if prev.dim() < 2 or prev.dim() > 4 or prev.numel() != math.prod(expected) \
                or tuple(prev.shape[-2:]) != expected[-2:]:
            raise ValueError(f'prev_logits must be the low-resolution logits {expected} of the '
                             f'previous predict call, got {tuple(prev.shape)}')
        return prev.reshape(expected).to(self.device, self.features.dtype)

    @torch.no_grad()
    def predict(self,
                points: ArrayLike,
                labels: ArrayLike,
                prev_logits: Optional[ArrayLike] = None,
                return_logits: bool = False) -> Tuple[np.ndarray, Tensor, float]:
        """Predict the mask of a click set on the image given to ``set_image``.

        Args:
            points (array-like): (N, 2) clicks (x, y) in original-image pixel coordinates
                (ints or floats, inside the image); mapped by :func:`map_points` (or
                :func:`map_points_original`).
            labels (array-like): (N,) 1 positive, 0 negative.
            prev_logits (Tensor | np.ndarray, optional): the ``logits`` returned by the
                previous call on this image, fed back as the mask prompt; None at the first
                click.
            return_logits (bool): return the full-resolution float32 logits (H, W) instead
                of the boolean mask (the mask is ``logits > 0``).

        Returns:
            tuple: ``masks`` (H, W) bool numpy array (float32 logits with
            ``return_logits``), ``logits`` the low-resolution logits (1, 1, 4h, 4w) tensor
            on the predictor's device to feed back, ``score`` the predicted IoU (float).
        """
        if not self.is_image_set:
            raise RuntimeError('no image set: call set_image(image) before predict()')
        points, labels = self._check_points(points, labels)
        prev = self._check_prev_logits(prev_logits)
        if self.protocol == 'original':
            mapped = map_points_original(points, self.padded_size, self.input_size)
        else:
            mapped = map_points(points, self.original_size, self.input_size)
        point_t = torch.as_tensor(mapped, dtype=torch.float32, device=self.device)[None]
        label_t = torch.as_tensor(labels, dtype=torch.long, device=self.device)[None]
        low_res, iou = self.head(self.features, point_t, label_t, prev)
        if self.protocol == 'original':
            full = postprocess_logits_original(low_res, self.input_size, self.pad_size, self.padded_size,
                                               self.original_size)
        else:
            full = postprocess_logits(low_res, self.input_size, self.pad_size, self.original_size)
        full = full[0, 0]
        out = full if return_logits else full > 0
        return out.cpu().numpy(), low_res.detach(), float(iou.reshape(-1)[0])


def load_predictor_weights(backbone: nn.Module, head: nn.Module, checkpoint) -> None:
    """Strictly load a checkpoint (file or dict) into the modules: the project's ``backbone.*`` /
    ``head.*`` layout, or a released HRSAM / HRSAM++ one, converted on load
    (:func:`mmhrsam.utils.checkpoint.load_model_weights`)."""
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = load_checkpoint_file(os.fspath(checkpoint))
    container = nn.Module()
    container.backbone = backbone
    container.head = head
    load_model_weights(container, checkpoint)
