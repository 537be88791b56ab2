"""ONNX export of an HRSAM / HRSAM++ encoder and a SAM head as SAM's ONNX encoder/decoder pair.

``encoder.onnx`` is fixed to one target size S (a multiple of 16); ``decoder.onnx`` has the
interface of segment_anything's ``SamOnnxModel`` (``scripts/export_onnx_model.py`` with
``--return-single-mask``), so code written for SAM's ONNX pair runs it. docs/deployment.md
describes both interfaces and the caller's preprocessing; in short:

* encoder input ``input_image``: (h, w, 3) float32 RGB intensities in [0, 255] of the image
  resized so that its long side is S (:func:`~mmhrsam.apis.predictor.get_preprocess_shape`);
  the graph flips to BGR when the model wants it, normalizes, pads to S x S with zeros and
  returns ``image_embeddings`` (1, C, S/16, S/16).
* decoder inputs ``point_coords`` (1, N, 2) float32 in the resized frame (plus SAM's
  trailing pad point (0, 0) with label -1 when no box is given), ``point_labels`` (1, N),
  ``mask_input`` (1, 1, S/4, S/4), ``has_mask_input`` (1,), ``orig_im_size`` (2,) float32;
  outputs ``masks`` (1, 1, H, W) logits at the original size, ``iou_predictions`` (1, 1),
  ``low_res_masks`` (1, 1, S/4, S/4).

What the export changes in the model, on purpose and only while exporting
(:func:`export_mode`): every Flexible Local Attention layer runs the ``sdpa`` backend (plain
ONNX MatMul/Softmax per window size), every Cycle-scan the ``export`` selective-scan backend
(:mod:`mmhrsam.ops.selective_scan.export_scan`: out-of-place operations, unrolled
for the fixed sequence length), and the attention layers see their token grids as Python
ints, so their index maps are built once and stored in the graph as constants.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import types
import warnings
from typing import Dict, Iterator, Sequence, Tuple

import torch
import torch.nn.functional as F
from segment_anything.utils.onnx import SamOnnxModel
from torch import Tensor, nn

from mmhrsam.models.attention import FlexibleLocalAttention
from mmhrsam.models.layers import CycleScan

from .predictor import as_rgb_image, check_target_size, get_preprocess_shape

#: Backends the exported graph is traced with (see the module docstring).
EXPORT_ATTENTION_BACKEND = 'sdpa'
EXPORT_SCAN_BACKEND = 'export'
#: ONNX opset of both files (SAM's exporter uses 17; scaled_dot_product_attention needs >= 14).
OPSET = 17

ENCODER_INPUTS = ('input_image', )
ENCODER_OUTPUTS = ('image_embeddings', )
DECODER_INPUTS = ('image_embeddings', 'point_coords', 'point_labels', 'mask_input', 'has_mask_input',
                  'orig_im_size')
DECODER_OUTPUTS = ('masks', 'iou_predictions', 'low_res_masks')


def _static_partition(module: FlexibleLocalAttention, grids, device: str):
    """``module.partition`` with the grid sizes as ints: the tracer hands shapes over as 0-dim
    tensors, which would miss the index-map cache and trace the map builders into the graph."""
    grids = tuple((int(h), int(w)) for h, w in grids)
    return type(module).partition(module, grids, device)


@contextlib.contextmanager
def export_mode(backbone: nn.Module) -> Iterator[nn.Module]:
    """Put ``backbone`` in its exportable configuration, restoring it on exit.

    Attention layers use :data:`EXPORT_ATTENTION_BACKEND` and build their index maps from
    int grid sizes; Cycle-scan modules use :data:`EXPORT_SCAN_BACKEND`.

    Args:
        backbone (nn.Module): an HRSAM / HRSAM++ encoder (or any module holding them).
    """
    saved = []
    for module in backbone.modules():
        if isinstance(module, FlexibleLocalAttention):
            saved.append((module, 'backend', module.backend))
            module.backend = EXPORT_ATTENTION_BACKEND
            module.partition = types.MethodType(_static_partition, module)
        elif isinstance(module, CycleScan):
            saved.append((module, 'scan_backend', module.scan_backend))
            module.scan_backend = EXPORT_SCAN_BACKEND
    try:
        yield backbone
    finally:
        for module, name, value in saved:
            setattr(module, name, value)
            module.__dict__.pop('partition', None)


def resize_longest_side(image, target_size: int):
    """The encoder's ``input_image``: an RGB image resized exactly as :class:`HRSAMPredictor` does.

    Args:
        image (np.ndarray): (H, W, 3) RGB image (see :func:`as_rgb_image` for what is accepted).
        target_size (int): S, the long side after resizing.

    Returns:
        np.ndarray: (h, w, 3) float32 intensities in [0, 255] with max(h, w) = S (bilinear,
        antialiased, not rounded; unchanged when the long side already is S).
    """
    image = as_rgb_image(image)
    size = get_preprocess_shape(*image.shape[:2], check_target_size(target_size))
    x = torch.from_numpy(image.astype('float32')).permute(2, 0, 1)[None]  # (1, 3, H, W)
    if size != tuple(image.shape[:2]):
        x = F.interpolate(x, size, mode='bilinear', align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).contiguous().numpy()


class EncoderOnnxModel(nn.Module):
    """Image encoder with its input normalization and padding, for a fixed target size.

    Args:
        backbone (nn.Module): encoder, ``forward(img (1, 3, S, S)) -> tuple`` ending with the
            (1, C, S/16, S/16) embedding (or that tensor).
        target_size (int): S, a multiple of 16.
        pixel_mean (Sequence[float]): normalization mean, RGB statistics.
        pixel_std (Sequence[float]): normalization std.
        bgr_input (bool): flip the channels to BGR before normalizing (released HRSAM weights).
    """

    def __init__(self, backbone: nn.Module, target_size: int, pixel_mean: Sequence[float],
                 pixel_std: Sequence[float], bgr_input: bool = False):
        super().__init__()
        self.backbone = backbone
        self.target_size = check_target_size(target_size)
        self.bgr_input = bool(bgr_input)
        self.register_buffer('pixel_mean', torch.tensor(pixel_mean, dtype=torch.float32), persistent=False)
        self.register_buffer('pixel_std', torch.tensor(pixel_std, dtype=torch.float32), persistent=False)

    def forward(self, input_image: Tensor) -> Tensor:
        """(h, w, 3) float RGB in [0, 255], long side = S -> (1, C, S/16, S/16) embedding."""
        size = self.target_size
        x = input_image.flip(-1) if self.bgr_input else input_image
        # The statistics stay in RGB order after a flip (how the released weights were trained).
        x = ((x - self.pixel_mean) / self.pixel_std).permute(2, 0, 1)[None]  # (1, 3, h, w)
        x = F.pad(x, (0, size - x.shape[3], 0, size - x.shape[2]))  # zeros after normalizing
        # A reshape to the constant square: everything after it has static shapes in the graph.
        x = x.reshape(1, 3, size, size)
        out = self.backbone(x)
        return out[-1] if isinstance(out, (tuple, list)) else out


class DecoderOnnxModel(SamOnnxModel):
    """A :class:`SAMHead` behind segment_anything's ONNX decoder interface, for a target size.

    segment_anything's ``SamOnnxModel`` supplies the point embedding (labels -1 pad, 0, 1 and
    2, 3 for box corners), the mask prompt and ``resize_longest_image_size``; this class
    changes what a fixed 1024 input and 64 x 64 grid would get wrong, and one tracing defect:

    * the input size is the target size S and the dense positional encoding is the head's own
      for the S/16 grid (:meth:`SAMHead.dense_pe`, whatever the head does for grids that are
      not 64 x 64);
    * the output is always the single-mask token 0, the output the head is trained and used
      with (SAM's ``select_masks`` would pick among its multimask outputs for one click);
    * the crop to the resized image uses the size as tensor bounds, so it follows
      ``orig_im_size`` at run time (``SamOnnxModel`` converts it to Python ints, which the
      tracer freezes to the aspect ratio of the example input).

    Args:
        head (nn.Module): :class:`mmhrsam.models.heads.SAMHead` (``prompt_encoder``,
            ``mask_decoder``, ``dense_pe(grid)``, ``stride``).
        target_size (int): S, the encoder's input size.
    """

    def __init__(self, head: nn.Module, target_size: int):
        target_size = check_target_size(target_size)
        if target_size % head.stride:
            raise ValueError(f'target_size {target_size} is not a multiple of the head stride {head.stride}')
        # SamOnnxModel reads these attributes of a Sam model; only they are needed.
        sam = nn.Module()
        sam.prompt_encoder, sam.mask_decoder = head.prompt_encoder, head.mask_decoder
        sam.image_encoder = types.SimpleNamespace(img_size=target_size)
        sam.mask_threshold = 0.0
        super().__init__(sam, return_single_mask=True)
        self.head = head
        self.grid = (target_size // head.stride, ) * 2

    def mask_postprocessing(self, masks: Tensor, orig_im_size: Tensor) -> Tensor:
        """(1, 1, S/4, S/4) logits -> (1, 1, H, W): upsample to S, crop the resized image, resize."""
        masks = F.interpolate(masks, size=(self.img_size, self.img_size), mode='bilinear', align_corners=False)
        resized = self.resize_longest_image_size(orig_im_size, self.img_size)  # (2,) int64
        masks = masks[..., :resized[0], :resized[1]]  # tensor bounds: dynamic in the graph
        height, width = orig_im_size.to(torch.int64)
        return F.interpolate(masks, size=(height, width), mode='bilinear', align_corners=False)

    @torch.no_grad()
    def forward(self, image_embeddings: Tensor, point_coords: Tensor, point_labels: Tensor, mask_input: Tensor,
                has_mask_input: Tensor, orig_im_size: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """SAM's decoder interface; see the module docstring for shapes.

        Returns:
            tuple[Tensor, Tensor, Tensor]: ``masks`` (1, 1, H, W) logits at the original
            size, ``iou_predictions`` (1, 1), ``low_res_masks`` (1, 1, S/4, S/4) logits.
        """
        sparse = self._embed_points(point_coords, point_labels)  # (1, N, C)
        dense = self._embed_masks(mask_input, has_mask_input)  # (1, C, S/16, S/16)
        masks, scores = self.mask_decoder.predict_masks(
            image_embeddings=image_embeddings, image_pe=self.head.dense_pe(self.grid),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
        masks, scores = masks[:, :1], scores[:, :1]  # token 0: the single-mask output
        return self.mask_postprocessing(masks, orig_im_size), scores, masks


#: Constants with at least this many elements, all equal, are stored as ConstantOfShape.
UNIFORM_CONSTANT_MIN_ELEMENTS = 4096
#: Above this size a model is saved with its tensors in one side file (protobuf's 2 GiB limit).
MAX_SINGLE_FILE_BYTES = 2**31 - 2**26


def compact_uniform_constants(model) -> int:
    """Replace large Constant nodes whose values are all equal by ``ConstantOfShape`` (same values).

    Constant folding turns every zero-filled buffer of the traced model (e.g. the ``sdpa``
    attention backend's output buffer that its per-size buckets are scattered into, one
    (1, L, heads, d) tensor per layer) into stored zeros: 150 MB at 1024², 2.4 GB at 4096².

    Args:
        model (onnx.ModelProto): modified in place.

    Returns:
        int: the number of constants replaced.
    """
    import numpy as np  # noqa: PLC0415
    from onnx import helper, numpy_helper  # noqa: PLC0415
    replaced = 0
    for index, node in enumerate(model.graph.node):
        if node.op_type != 'Constant' or node.attribute[0].name != 'value':
            continue
        tensor = node.attribute[0].t
        if int(np.prod(tensor.dims)) < UNIFORM_CONSTANT_MIN_ELEMENTS:
            continue
        values = numpy_helper.to_array(tensor)
        if not (values == values.flat[0]).all():
            continue
        shape = helper.make_node('Constant', [], [f'{node.output[0]}_shape'],
                                 value=numpy_helper.from_array(np.array(values.shape, np.int64)))
        fill = helper.make_node('ConstantOfShape', shape.output, list(node.output), name=node.name,
                                value=numpy_helper.from_array(values.reshape(-1)[:1]))
        model.graph.node.remove(node)
        model.graph.node.insert(index, fill)
        model.graph.node.insert(index, shape)
        replaced += 1
    return replaced


def _onnx_export(model: nn.Module, args: Tuple[Tensor, ...], path: str, input_names: Sequence[str],
                 output_names: Sequence[str], dynamic_axes: Dict[str, Dict[int, str]]) -> str:
    """``torch.onnx.export`` with the TorchScript-based exporter, :func:`compact_uniform_constants`,
    then ONNX's model checker; one file, or one file and ``<path>.data`` when over 2 GiB."""
    import onnx  # noqa: PLC0415  optional dependency (requirements/onnx.txt)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # A scratch folder: over 2 GiB the exporter writes one side file per tensor next to its output.
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        raw = os.path.join(scratch, 'model.onnx')
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns wherever a shape becomes a constant: fixed shapes are the point here.
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            torch.onnx.export(model, args, raw, dynamo=False, opset_version=OPSET, do_constant_folding=True,
                              input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes=dynamic_axes)
        proto = onnx.load(raw)
    compact_uniform_constants(proto)
    large = proto.ByteSize() > MAX_SINGLE_FILE_BYTES
    onnx.save(proto, path, save_as_external_data=large, location=os.path.basename(path) + '.data')
    onnx.checker.check_model(path)
    return path


def export_encoder(encoder: EncoderOnnxModel, path: str) -> str:
    """Write ``encoder`` (in :func:`export_mode`) to ``path``; its input height and width are dynamic."""
    size = encoder.target_size
    # A landscape example (h != w) so that nothing of the example's aspect ratio is baked in.
    example = torch.rand(size * 3 // 4, size, 3) * 255
    with export_mode(encoder.backbone), torch.no_grad():
        # An eager pass first builds and caches the index maps, so the trace reads them as
        # constants instead of recording how they are built.
        encoder.eval()(example)
        return _onnx_export(encoder.eval(), (example, ), path, ENCODER_INPUTS, ENCODER_OUTPUTS,
                            {'input_image': {0: 'height', 1: 'width'}})


def export_decoder(decoder: DecoderOnnxModel, path: str) -> str:
    """Write ``decoder`` to ``path``; the number of points and the original size are dynamic."""
    h, w = decoder.grid
    channels = decoder.head.prompt_encoder.embed_dim
    size = decoder.img_size
    example = (torch.randn(1, channels, h, w), torch.rand(1, 3, 2) * size,
               torch.tensor([[1.0, 0.0, -1.0]]), torch.randn(1, 1, 4 * h, 4 * w), torch.tensor([1.0]),
               torch.tensor([size * 3 // 4, size], dtype=torch.float32))
    dynamic_axes = {'point_coords': {1: 'num_points'}, 'point_labels': {1: 'num_points'},
                    'masks': {2: 'orig_height', 3: 'orig_width'}}
    return _onnx_export(decoder.eval(), example, path, DECODER_INPUTS, DECODER_OUTPUTS, dynamic_axes)


def export_onnx_pair(backbone: nn.Module, head: nn.Module, out_dir: str, target_size: int,
                     pixel_mean: Sequence[float], pixel_std: Sequence[float],
                     bgr_input: bool = False) -> Dict[str, str]:
    """Write ``encoder.onnx`` and ``decoder.onnx`` for ``target_size`` into ``out_dir``.

    Args:
        backbone (nn.Module): HRSAM / HRSAM++ encoder (CPU, float32).
        head (nn.Module): :class:`SAMHead`.
        out_dir (str): output folder (created).
        target_size (int): S, a multiple of 16.
        pixel_mean (Sequence[float]): normalization mean (RGB statistics).
        pixel_std (Sequence[float]): normalization std.
        bgr_input (bool): the model takes BGR-ordered channels.

    Returns:
        dict: ``{'encoder': path, 'decoder': path}``.
    """
    encoder = EncoderOnnxModel(backbone, target_size, pixel_mean, pixel_std, bgr_input)
    return {'encoder': export_encoder(encoder, os.path.join(out_dir, 'encoder.onnx')),
            'decoder': export_decoder(DecoderOnnxModel(head, target_size), os.path.join(out_dir, 'decoder.onnx'))}


__all__ = ['compact_uniform_constants', 'resize_longest_side', 'EncoderOnnxModel', 'DecoderOnnxModel', 'export_mode',
           'export_encoder', 'export_decoder', 'export_onnx_pair', 'ENCODER_INPUTS', 'ENCODER_OUTPUTS',
           'DECODER_INPUTS', 'DECODER_OUTPUTS']
