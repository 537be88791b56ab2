"""A SAM-style click predictor: set an image once, then predict a mask per click set.

The pre- and post-processing rules (resize-longest-side, channel order, normalization and
padding, click mapping, logits back to the image; and their ``protocol='original'`` variants,
docs/evaluation_protocol.md) are those of :mod:`mmhrsam.structures.image_geometry`, whose
docstring states them; the helpers are re-exported here for existing imports.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from mmhrsam.ops.mask_resize import logits_to_original_size, mask_resize_unavailable
from mmhrsam.registry import MODELS
from .compiled import Switch
from .encoder_runner import EncoderRunner
from .head_runner import HeadRunner
from mmhrsam.structures.image_geometry import (ArrayLike, as_rgb_image, check_protocol,  # noqa: F401  (re-exported)
                                               check_target_size, get_preprocess_shape, map_points,
                                               map_points_original, postprocess_logits, postprocess_logits_original,
                                               preprocess_image, preprocess_image_original)
from mmhrsam.utils.checkpoint import load_checkpoint_file, load_model_weights


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
        head (nn.Module): :class:`mmhrsam.models.heads.SAMHead` or one with its contract
            (``forward(..., image_pe=)`` and ``dense_pe(grid)``).
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
        precision (str): encoder autocast: ``'auto'`` (bf16 on CUDA, fp32 on CPU),
            ``'fp32'``, ``'bf16'``, ``'fp16'``. The prompt encoder and mask decoder always
            run in the head's own dtype (fp32 unless the caller converted it).
        compile (str | bool): ``torch.compile`` the encoder once per input size and the
            click step once (the click count is a dynamic dimension): ``'auto'`` (on CUDA,
            eager fallback with a warning), True or False. The first ``set_image`` at a new
            size compiles (tens of seconds the first time on a machine; Inductor's on-disk
            cache makes later processes faster).
        cuda_graph (str | bool): replay the encoder (per input size) and the click step
            (per embedding size, number of clicks and mask prompt given or not) from CUDA
            graphs: ``'auto'`` (on CUDA), True or False.
            See :class:`EncoderRunner` and :class:`HeadRunner`. After changing the
            backbone's weights in place, call ``predictor.encoder.reset()``.
        decoder_precision (str): the click step's fp32 matrix products: ``'auto'`` (TF32
            tensor cores on CUDA, fp32 on CPU), ``'fp32'`` or ``'tf32'``; see
            :class:`HeadRunner`.
    """

    def __init__(self,
                 backbone: nn.Module,
                 head: nn.Module,
                 target_size: int = 2048,
                 pixel_mean: Sequence[float] = (123.675, 116.28, 103.53),
                 pixel_std: Sequence[float] = (58.395, 57.12, 57.375),
                 bgr_input: bool = False,
                 device: Union[str, torch.device, None] = None,
                 protocol: str = 'exact',
                 precision: str = 'auto',
                 compile: Switch = 'auto',
                 cuda_graph: Switch = 'auto',
                 decoder_precision: str = 'auto'):
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
        self.encoder = EncoderRunner(self.backbone, self.device, precision, compile, cuda_graph)
        head_param = next(self.head.parameters(), None)
        self.head_dtype = head_param.dtype if head_param is not None else torch.float32
        self.head_runner = HeadRunner(self.head, self.device, compile, cuda_graph, decoder_precision)
        self.reset_image()

    # ------------------------------------------------------------------ building
    @classmethod
    def from_config(cls, config, checkpoint=None, device: Union[str, torch.device, None] = None,
                    precision: str = 'auto', compile: Switch = 'auto', cuda_graph: Switch = 'auto',
                    decoder_precision: str = 'auto') -> 'HRSAMPredictor':
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
            precision, compile, cuda_graph, decoder_precision: see the class (run-time
                choices, not config keys).
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
        return cls(backbone, head, device=device, precision=precision, compile=compile,
                   cuda_graph=cuda_graph, decoder_precision=decoder_precision, **options)

    # ------------------------------------------------------------------ image
    @property
    def is_image_set(self) -> bool:
        """Whether ``set_image`` has cached an embedding."""
        return self.features is not None

    def reset_image(self) -> None:
        """Drop the cached embedding and image geometry."""
        self.features: Optional[Tensor] = None
        self.image_pe: Optional[Tensor] = None  # the head's dense positional encoding of the embedding grid
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
        features = self.encoder(x)
        if features.dim() != 4 or features.shape[0] != 1:
            raise RuntimeError(f'backbone returned an embedding of shape {tuple(features.shape)}, '
                               'expected (1, C, h, w)')
        self.features = features.to(self.head_dtype)  # the decoder runs in its own precision
        self.image_pe = self.head.dense_pe(features.shape[-2:]).to(self.head_dtype)  # once per image, not per click
        self.head_runner.warm_up(self.features, self.image_pe)  # compiles the click step once per embedding shape
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
                return_logits: bool = False,
                return_numpy: bool = True) -> Tuple[Union[np.ndarray, Tensor], Tensor, float]:
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
            return_numpy (bool): the mask (or logits) as a NumPy array (copied to the host);
                False returns it as a tensor on the predictor's device (no copy), which is
                what a GPU consumer (a renderer, a next model) should ask for.

        Returns:
            tuple: ``masks`` (H, W) bool numpy array or tensor (float32 logits with
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
        low_res, iou = self.head_runner(self.features, self.image_pe, point_t, label_t, prev)
        out = mask_at_original_size(low_res, self.input_size, self.pad_size, self.padded_size,
                                    self.original_size, return_logits)
        if return_numpy:
            out = to_host(out)
        return out, low_res.detach(), float(iou.reshape(-1)[0])


def mask_at_original_size(low_res: Tensor, input_size: Tuple[int, int], pad_size: int,
                          padded_size: Optional[Tuple[int, int]], original_size: Tuple[int, int],
                          return_logits: bool) -> Tensor:
    """Low-resolution logits -> the mask (or logits) at the original size.

    :func:`postprocess_logits`, or :func:`postprocess_logits_original` when ``padded_size``
    is given. On CUDA the former runs as two Triton kernels with the threshold fused
    (:mod:`mmhrsam.ops.mask_resize`: 0.10 instead of 0.21 ms per call for a 12-MP image on an
    H200, docs/benchmarks.md).

    Args:
        low_res (Tensor): (1, 1, h, w) low-resolution logits.
        input_size (tuple[int, int]): (h', w') of the resized image inside the padded square.
        pad_size (int): side of the padded square the logits cover.
        padded_size (tuple[int, int], optional): the 'original' protocol's 32-padded (H', W');
            None for the 'exact' protocol.
        original_size (tuple[int, int]): (H, W) of the image.
        return_logits (bool): return the float logits instead of the bool mask ``logits > 0``.

    Returns:
        Tensor: (H, W) bool mask or logits on ``low_res``'s device.
    """
    if padded_size is not None:
        full = postprocess_logits_original(low_res, input_size, pad_size, padded_size, original_size)
    elif mask_resize_unavailable(low_res) is None:
        return logits_to_original_size(low_res, input_size, pad_size, original_size, as_mask=not return_logits)
    else:
        full = postprocess_logits(low_res, input_size, pad_size, original_size)
    full = full[0, 0]
    return full if return_logits else full > 0


def to_host(tensor: Tensor) -> np.ndarray:
    """A device tensor as a NumPy array; CUDA tensors go through page-locked memory (about
    twice the bandwidth of a copy into pageable memory: a 12-MP mask in ~0.5 ms)."""
    if tensor.device.type != 'cuda':
        return tensor.cpu().numpy()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    torch.cuda.current_stream(tensor.device).synchronize()
    return host.numpy()


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
