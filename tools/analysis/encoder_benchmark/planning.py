"""The run plan: every (model, size, mode) case in order, with the reason a case is skipped."""
from __future__ import annotations

import argparse
from typing import List, NamedTuple

import torch

from .encoders import ENCODERS, num_tokens
from .modes import enabled_modes, mode_skip_reason

GIB = 2 ** 30
#: Bytes per element of SAM's materialized attention scores: the scores, the copy with the
#: relative-position bias added, the softmax (fp32 under autocast).
SCORE_BYTES = {'autocast-bf16': 8, 'bf16': 6, 'fp32': 12}


class Case(NamedTuple):
    model: str
    size: int
    mode: str  # a timing mode (modes.TIMING_MODES) or 'breakdown'
    skip: str = ''  # reason, '' when the case runs


def size_skip_reason(name: str, size: int, args: argparse.Namespace) -> str:
    """Why ``name`` does not run at ``size`` ('' if it does)."""
    enc, tokens = ENCODERS[name], num_tokens(size)
    if enc.dense and args.max_global_tokens and tokens > args.max_global_tokens:
        return f'dense global attention over {tokens} tokens > --max-global-tokens {args.max_global_tokens}'
    if enc.dense == 'materialized':
        gib = enc.heads * tokens ** 2 * SCORE_BYTES[args.precision] / GIB
        if gib > args.max_attn_matrix_gib:
            return (f'materializes {enc.heads} x {tokens}^2 attention scores (~{gib:.0f} GiB) '
                    f'> --max-attn-matrix-gib {args.max_attn_matrix_gib:.0f}')
    return ''


def model_mode_skip_reason(name: str, mode: str) -> str:
    """Why ``mode`` does not apply to encoder ``name`` ('' if it does)."""
    if mode == 'fast' and ENCODERS[name].host_factories:
        # Its forward copies host-made index tensors to the GPU, which a CUDA graph cannot
        # capture; SamPredictor users run it eagerly, so its eager row is the comparison.
        return "segment_anything's encoder is not capturable as is: see its eager (and graph) rows"
    return ''


def plan(args: argparse.Namespace, device: torch.device) -> List[Case]:
    """Every (model, size, mode) case in run order; each breakdown follows its model's
    cases at that size, so the model is built once."""
    modes = enabled_modes(args)
    cases = []
    for name in args.models:
        for size in args.sizes:
            skip = size_skip_reason(name, size, args)
            cases += [Case(name, size, mode, skip or mode_skip_reason(mode, device) or model_mode_skip_reason(name, mode))
                      for mode in modes]
    if args.breakdown:
        for name in args.breakdown_models:
            case = Case(name, args.breakdown_size, 'breakdown', size_skip_reason(name, args.breakdown_size, args))
            same = [i for i, c in enumerate(cases) if c.model == name and c.size == args.breakdown_size]
            cases.insert(same[-1] + 1 if same else len(cases), case)
    return cases
