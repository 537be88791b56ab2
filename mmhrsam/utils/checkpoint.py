"""Checkpoint conversion: loading, key renaming by rules, saving, and the converters.

The project's interactive-segmentor layout is ``backbone.*`` (image encoder),
``head.prompt_encoder.*`` and ``head.mask_decoder.*`` (:class:`mmhrsam.models.heads.SAMHead`).
Each foreign layout is described by an ordered list of :data:`Rule` s; the first rule whose
pattern matches a key (``re.fullmatch``) renames it, or drops it when its replacement is
None. Keys no rule matches are errors (or dropped with a warning when ``strict=False``),
so a converter never silently loses weights. The scripts in ``tools/model_converters/``
are thin command-line wrappers around :func:`converter_main`.

Loading for inference and evaluation goes through :func:`load_model_weights`: it accepts the
project's layout and the released HRSAM / HRSAM++ layout (converted on load), so every
entry point loads strictly.
"""
from __future__ import annotations

import argparse
import math
import os
import pickle
import re
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmhrsam.models.layers.rope import AxialRoPE

StateDict = Dict[str, Tensor]
#: (pattern matched with ``re.fullmatch``, replacement template for ``Match.expand`` or
#: None to drop the key on purpose).
Rule = Tuple[str, Optional[str]]


@dataclass
class ConversionResult:
    """Outcome of :func:`rename_keys`.

    Attributes:
        state_dict (OrderedDict[str, Tensor]): converted weights.
        renamed (dict[str, str]): source key -> destination key of every kept weight.
        dropped (list[str]): source keys dropped on purpose by a rule.
        unknown (list[str]): source keys no rule matched (dropped; only when not strict).
    """

    state_dict: StateDict
    renamed: Dict[str, str] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)
    unknown: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        """Human-readable report: kept keys and parameters per top-level prefix, drops."""
        lines = [f'kept {len(self.state_dict)} tensors, '
                 f'{sum(t.numel() for t in self.state_dict.values()):,} elements']
        for prefix, count in Counter(_group(k) for k in self.state_dict).items():
            lines.append(f'  {prefix}: {count} tensors')
        for title, keys in (('dropped', self.dropped), ('dropped UNKNOWN', self.unknown)):
            if keys:
                lines.append(f'{title} {len(keys)} tensors: ' + ', '.join(summarize_keys(keys)))
        lines.extend(self.notes)
        return '\n'.join(lines)


def _group(key: str) -> str:
    """``backbone`` or ``head.prompt_encoder``-style group of a converted key."""
    parts = key.split('.')
    return '.'.join(parts[:2]) if parts[0] == 'head' else parts[0]


def summarize_keys(keys: Sequence[str], full_up_to: int = 20) -> List[str]:
    """``keys`` for reports; beyond ``full_up_to`` keys, block indices are collapsed
    (``blocks.3.x`` -> ``blocks.*.x (x12)``)."""
    if len(keys) <= full_up_to:
        return list(keys)
    counts = Counter(re.sub(r'\.\d+(?=\.|$)', '.*', k) for k in keys)
    return [f'{k} (x{n})' if n > 1 else k for k, n in counts.items()]


# ---------------------------------------------------------------------- file IO
def load_checkpoint_file(path: str, allow_pickle: bool = False) -> dict:
    """Load a ``.pth``/``.pt`` (or ``.safetensors``) checkpoint onto the CPU.

    Args:
        path (str): checkpoint file.
        allow_pickle (bool): unpickle arbitrary objects (``weights_only=False``). Training
            checkpoints may hold e.g. argparse namespaces; enable for trusted files only.
    """
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file  # optional dependency, only for this format
        return load_file(path)
    try:
        return torch.load(path, map_location='cpu', weights_only=not allow_pickle)
    except pickle.UnpicklingError as err:
        raise RuntimeError(f'{path} holds objects other than tensors; if you trust the file, '
                           'load it with allow_pickle=True (--allow-pickle)') from err


def extract_state_dict(checkpoint: dict) -> StateDict:
    """The state dict inside a checkpoint wrapped under ``'state_dict'`` or ``'model'``,
    with a DistributedDataParallel ``module.`` prefix removed."""
    for wrapper in ('state_dict', 'model'):
        if isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
            break
    bad = [k for k, v in checkpoint.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f'not a state dict: non-tensor entries {bad[:10]}')
    if checkpoint and all(k.startswith('module.') for k in checkpoint):
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return OrderedDict(checkpoint)


def save_state_dict(state_dict: StateDict, path: str, meta: Optional[dict] = None) -> None:
    """Save as ``{'state_dict': ..., 'meta': ...}`` (what MMEngine's loaders expect)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    torch.save({'state_dict': state_dict, 'meta': dict(meta or {})}, path)


# ---------------------------------------------------------------------- renaming
def rename_keys(state_dict: StateDict, rules: Sequence[Rule], strict: bool = True) -> ConversionResult:
    """Rename (or drop) every key by the first matching rule.

    Args:
        state_dict (dict[str, Tensor]): source weights.
        rules (Sequence[Rule]): ordered (pattern, replacement-or-None) pairs.
        strict (bool): raise on keys no rule matches; otherwise drop them with a warning.

    Raises:
        ValueError: unmatched keys under ``strict``, or two keys renamed to one name.
    """
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    result = ConversionResult(state_dict=OrderedDict())
    for key, value in state_dict.items():
        match, repl = _first_match(key, compiled)
        if match is None:
            result.unknown.append(key)
        elif repl is None:
            result.dropped.append(key)
        else:
            new_key = match.expand(repl)
            if new_key in result.state_dict:
                raise ValueError(f'two source keys map to {new_key!r}')
            result.state_dict[new_key] = value
            result.renamed[key] = new_key
    if result.unknown:
        listing = ', '.join(summarize_keys(result.unknown))
        if strict:
            raise ValueError(f'{len(result.unknown)} keys of an unknown layout: {listing} '
                             '(use strict=False / --no-strict to drop them)')
        warnings.warn(f'dropping {len(result.unknown)} unknown keys: {listing}')
    return result


def _first_match(key: str, compiled: Sequence[Tuple[re.Pattern, Optional[str]]]
                 ) -> Tuple[Optional[re.Match], Optional[str]]:
    """The match and replacement of the first rule whose pattern matches all of ``key``."""
    for pattern, repl in compiled:
        match = pattern.fullmatch(key)
        if match is not None:
            return match, repl
    return None, None


def _children(names: Sequence[str]) -> str:
    """Regex group matching a key that starts with one of the child module ``names``."""
    return '((?:' + '|'.join(re.escape(n) for n in names) + r')(?:\..+)?)'


#: Direct children of segment_anything's modules, to reject keys of other layouts early.
SAM_ENCODER_CHILDREN = ('patch_embed', 'pos_embed', 'blocks', 'neck')
PROMPT_ENCODER_CHILDREN = ('pe_layer', 'point_embeddings', 'not_a_point_embed', 'mask_downscaling',
                           'no_mask_embed')
MASK_DECODER_CHILDREN = ('transformer', 'iou_token', 'mask_tokens', 'output_upscaling',
                         'output_hypernetworks_mlps', 'iou_prediction_head')

# ---------------------------------------------------------------------- converters
#: Official segment_anything checkpoint -> mmhrsam.
SAM_RULES: List[Rule] = [
    (r'image_encoder\.' + _children(SAM_ENCODER_CHILDREN), r'backbone.\1'),
    (r'prompt_encoder\.' + _children(PROMPT_ENCODER_CHILDREN), r'head.prompt_encoder.\1'),
    (r'mask_decoder\.' + _children(MASK_DECODER_CHILDREN), r'head.mask_decoder.\1'),
    (r'pixel_(?:mean|std)', None),  # normalisation constants live in the data preprocessor
]

#: Key of the released RoPE frequency table (a derived buffer, not a weight).
ROPE_FREQS_KEY = 'backbone.rope.freqs'
#: Largest relative difference tolerated between a stored RoPE table and ours: a few float32
#: roundings (the original computes the powers in float32, mmhrsam in float64).
ROPE_FREQS_RTOL = 1e-6

#: Released HRSAM / HRSAM++ checkpoint -> mmhrsam. Backbone names are kept as released.
HRSAM_RELEASE_RULES: List[Rule] = [
    # The released axial RoPE saved its frequency table; mmhrsam recomputes it (it is checked
    # against ours by check_rope_freqs before being dropped).
    (re.escape(ROPE_FREQS_KEY), None),
    (r'backbone\.(.+)', r'backbone.\1'),
    (r'neck\.pos_embed_layer\.(.+)', r'head.prompt_encoder.pe_layer.\1'),
    (r'neck\.point_embeds\.(.+)', r'head.prompt_encoder.point_embeddings.\1'),
    (r'neck\.' + _children(PROMPT_ENCODER_CHILDREN), r'head.prompt_encoder.\1'),
    (r'decode_head\.' + _children(MASK_DECODER_CHILDREN), r'head.mask_decoder.\1'),
]

#: MAE / timm ViT -> initialisation of the HRSAM backbone's ViT part.
MAE_RULES: List[Rule] = [
    (r'(patch_embed\.proj\.(?:weight|bias))', r'backbone.\1'),
    (r'pos_embed', r'backbone.pos_embed'),
    (r'(blocks\.\d+\.(?:norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\.(?:weight|bias))',
     r'backbone.\1'),
    # Parts HRSAM has no use for: class token, final norms, classifier, MAE decoder.
    (r'cls_token|mask_token|(?:norm|fc_norm|head)\.(?:weight|bias)|decoder_.+', None),
]


def convert_sam(state_dict: StateDict, strict: bool = True) -> ConversionResult:
    """Official SAM (``image_encoder/prompt_encoder/mask_decoder.*``) -> mmhrsam layout."""
    return rename_keys(state_dict, SAM_RULES, strict)


def check_rope_freqs(table: Tensor) -> str:
    """Check a stored RoPE frequency table against the one mmhrsam's axial RoPE computes.

    The table of ``head_dim // 4`` frequencies is a function of the head size and the
    frequency base, which mmhrsam's :class:`AxialRoPE` recomputes at build time; a table that
    differs (beyond float32 rounding) means the checkpoint was trained with another RoPE and
    would give wrong embeddings without any loading error, so it is rejected.

    Args:
        table (Tensor): the stored ``backbone.rope.freqs``, (head_dim // 4,).

    Returns:
        str: a one-line report for the conversion summary.

    Raises:
        ValueError: the table has another shape or other values.
    """
    if table.dim() != 1 or table.numel() == 0:
        raise ValueError(f'{ROPE_FREQS_KEY} has shape {tuple(table.shape)}, expected (head_dim // 4,)')
    ours = AxialRoPE(4 * table.numel()).freqs.double()
    rel = ((table.double() - ours).abs() / ours).max().item()
    if not rel <= ROPE_FREQS_RTOL:
        raise ValueError(f'{ROPE_FREQS_KEY} differs from the frequencies of mmhrsam\'s axial RoPE '
                         f'(head_dim={4 * table.numel()}, theta=10000) by {rel:.3g} relative (more '
                         f'than {ROPE_FREQS_RTOL:g}): this checkpoint was trained with another '
                         'rotary embedding and cannot be loaded into mmhrsam\'s HRSAM')
    return (f'{ROPE_FREQS_KEY} ({table.numel()} frequencies) equals mmhrsam\'s axial RoPE table '
            f'(max relative difference {rel:.1g}): dropped, recomputed at build time')


def convert_hrsam_release(state_dict: StateDict, strict: bool = True) -> ConversionResult:
    """Released HRSAM/HRSAM++ (``backbone/neck/decode_head.*``) -> mmhrsam layout.

    ``backbone.rope.freqs`` is verified with :func:`check_rope_freqs` and dropped.
    """
    note = check_rope_freqs(state_dict[ROPE_FREQS_KEY]) if ROPE_FREQS_KEY in state_dict else None
    result = rename_keys(state_dict, HRSAM_RELEASE_RULES, strict)
    if note:
        result.notes.append(note)
    return result


def is_release_layout(state_dict: StateDict) -> bool:
    """Whether keys are in the released HRSAM layout (``neck.*`` / ``decode_head.*``, no ``head.*``)."""
    keys = list(state_dict)
    return (not any(k.startswith('head.') for k in keys)
            and any(k.startswith(('neck.', 'decode_head.')) for k in keys))


def to_model_layout(state_dict: StateDict) -> StateDict:
    """A state dict ready for strict loading into a ``backbone`` + ``head`` model.

    A released HRSAM / HRSAM++ state dict is converted with :func:`convert_hrsam_release`
    (strictly: keys of an unknown layout are errors); in the project's layout, a
    ``backbone.rope.freqs`` left by an older conversion is verified and dropped. Anything
    else is returned unchanged, so strict loading reports it.
    """
    if is_release_layout(state_dict):
        return convert_hrsam_release(state_dict).state_dict
    if ROPE_FREQS_KEY in state_dict:
        check_rope_freqs(state_dict[ROPE_FREQS_KEY])
        state_dict = OrderedDict((k, v) for k, v in state_dict.items() if k != ROPE_FREQS_KEY)
    return state_dict


def load_model_weights(model: nn.Module, checkpoint: dict) -> None:
    """Strictly load a loaded checkpoint into ``model`` (children ``backbone`` and ``head``).

    Args:
        model (nn.Module): the model (not a DDP wrapper).
        checkpoint (dict): a state dict in the project's or the released layout, possibly
            wrapped (see :func:`extract_state_dict` and :func:`to_model_layout`).

    Raises:
        RuntimeError: missing or unexpected keys (``nn.Module.load_state_dict``).
        ValueError: a released checkpoint with keys of an unknown layout or another RoPE.
    """
    model.load_state_dict(to_model_layout(extract_state_dict(checkpoint)), strict=True)


def convert_mae(state_dict: StateDict, strict: bool = True) -> ConversionResult:
    """MAE/timm ViT -> ``backbone.*`` HRSAM initialisation.

    ``pos_embed`` keeps its (1, 1 + g*g, C) shape, class slot included: HRSAM resizes the
    g x g part to its token grid at run time and ignores slot 0.
    """
    pos = state_dict.get('pos_embed')
    if pos is not None:
        grid = math.isqrt(pos.shape[1] - 1)
        if pos.dim() != 3 or pos.shape[0] != 1 or grid * grid != pos.shape[1] - 1:
            raise ValueError(f'pos_embed of shape {tuple(pos.shape)} is not (1, 1 + g*g, C) '
                             'with a class-token slot')
    return rename_keys(state_dict, MAE_RULES, strict)


# ---------------------------------------------------------------------- command line
def converter_main(convert: Callable[[StateDict, bool], ConversionResult], description: str,
                   argv: Optional[Sequence[str]] = None) -> ConversionResult:
    """Command line ``SRC DST [--no-strict] [--allow-pickle]`` shared by the converters.

    Args:
        convert (Callable): one of the ``convert_*`` functions.
        description (str): help text of the script.
        argv (Sequence[str], optional): arguments; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source checkpoint')
    parser.add_argument('dst', help='converted checkpoint to write')
    parser.add_argument('--strict', action=argparse.BooleanOptionalAction, default=True,
                        help='fail on keys of an unknown layout (default); --no-strict drops them')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='load arbitrary pickled objects (trusted files only)')
    args = parser.parse_args(argv)
    state_dict = extract_state_dict(load_checkpoint_file(args.src, args.allow_pickle))
    try:
        result = convert(state_dict, args.strict)
    except ValueError as err:
        parser.exit(1, f'error: {err}\n')
    save_state_dict(result.state_dict, args.dst,
                    meta=dict(converted_from=os.path.basename(args.src), converter=convert.__name__))
    print(f'{args.src} -> {args.dst}\n{result.summary()}')
    return result
