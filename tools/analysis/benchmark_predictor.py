"""User-level latency of click predictors: ``set_image`` once, then a click sequence.

What an annotator feels, measured through the public predictor APIs on random weights:

==========  ====================================================================  ===========
label       predictor                                                             sizes
==========  ====================================================================  ===========
HRSAM       ``mmhrsam.apis.HRSAMPredictor``, configs/hrsam/hrsam_vit-b_2048.py     ``--sizes``
HRSAM++     the same, configs/hrsam_plusplus/hrsam-plusplus_vit-b_2048.py          ``--sizes``
SAM-ViT-B   segment_anything's ``SamPredictor``, ``sam_model_registry['vit_b']``  1024
SAM-ViT-H   the same with ``sam_model_registry['vit_h']``                          1024
SAM2.1-B+   sam2's ``SAM2ImagePredictor``, ``configs/sam2.1/sam2.1_hiera_b+.yaml``  1024
==========  ====================================================================  ===========

SAM 2.1 runs where the ``sam2`` package is importable (else a ``skipped`` row); it is built
with ``sam2.build_sam.build_sam2(config, ckpt_path=None)``, i.e. random weights.

Protocol, per (model, size) case: build the predictor; a warm-up image (its first
``set_image`` and first click are reported as ``first_set_image_ms`` / ``first_predict_ms``,
since they may include compilation, then excluded); then ``--images`` other images
(``--image-size``, 4000 x 3000 RGB uint8 noise by default), each: ``set_image`` and, for every
output kind, one pass of ``--clicks`` ``predict`` calls. Call k passes the first k + 1 clicks of
a fixed sequence (a golden-angle spiral around the image centre, labels alternating positive /
negative from a positive one) and the low-resolution logits of call k - 1 (SAM / SAM 2:
``multimask_output=False``, the low-res logits as ``mask_input``). Every call is timed by the
wall clock with the device synchronized before and after, and (CUDA) by CUDA events around it
(``gpu_span``: includes the GPU's idle gaps while the host launches work).

Output kinds: ``numpy`` (the default of every predictor: the full-resolution mask copied to the
host) and ``tensor`` (the mask stays on the device: ``HRSAMPredictor.predict(...,
return_numpy=False)`` where the predictor has that option; SamPredictor's public
``predict_torch`` with ``transform.apply_coords_torch``; SAM 2's predictor has no public
tensor output).

Reported per case: ``set_image_ms`` (median over the images), per-click ``predict`` median /
p90 / mean per output kind, ``spc_ms`` = median over the images of (set_image + the clicks'
sum) / clicks (the "20-SPC" at 20 clicks), ``gpu_kernel_ms`` / ``gpu_copy_ms`` (CUDA: the
device time of one more click pass, tensor output where available, per click: the kernels
(and memsets), and apart the memory copies, as the torch profiler records them; kernels
replayed from a CUDA graph count where the profiler sees them), ``weights_mib`` and ``peak_mib``
(``torch.cuda.max_memory_allocated`` over the timed images, weights included).

Precision: HRSAMPredictor's ``precision`` / ``compile`` / ``decoder_precision`` options are
passed only when asked (``--hrsam-precision`` / ``--hrsam-compile`` /
``--hrsam-decoder-precision``) and the predictor has them; otherwise it runs
as a user gets it by default. Which options the predictor has and which were passed are in
every HRSAM row (``options``) and in ``env.hrsam_predictor_options``. SAM and SAM 2 run
``set_image`` inside a bf16 autocast on CUDA (their decoders in fp32); ``--sam-fp32`` adds
SAM rows with fp32 ``set_image``. On CPU everything is fp32.

The JSON (``--out``) is rewritten after every case; a failing case becomes an ``error`` row and
the run goes on; ``--time-limit-s`` turns the cases left once it is reached into ``skipped``
rows. Cases run in the order the target checks need (HRSAM 2048, SAM ViT-H 1024, SAM 2.1,
HRSAM++ 2048, then the rest). The target checks (PASS / MISS) are printed and stored under
``targets``.

``--tiny``: few-channel encoders of the same code paths (HRSAM / HRSAM++: those of
tools/analysis/benchmark_encoder.py with a narrow SAM head; SAM: segment_anything's ``Sam``
with a 2-block, width-32 ``ImageEncoderViT`` and a width-32 decoder built here at a 128-pixel
input) and a 160 x 120 image, for smoke tests on CPU; SAM 2 is skipped there.

The code is split into the ``predictor_benchmark`` package next to this script (predictor
table, plan, sessions, timing, one case, checks, report); this file is the command line.

Examples::

    python tools/analysis/benchmark_predictor.py --tiny --sizes 64 128       # CPU smoke test
    # one GPU run: every predictor, ~3 minutes on an H200
    python tools/analysis/benchmark_predictor.py --device cuda --time-limit-s 170 \\
        --out work_dirs/benchmark_predictor.json
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the predictor_benchmark package

import mmhrsam.models  # noqa: E402,F401  (registers the encoders and the head)
# The parts, re-exported for tests and for callers that import this script.
from predictor_benchmark import predictors  # noqa: E402,F401  (tests substitute predictors.HRSAMPredictor)
from predictor_benchmark.checks import OUTPUTS, comparisons, target_checks  # noqa: E402
from predictor_benchmark.planning import Case, click_sequence, make_images, plan  # noqa: E402,F401
from predictor_benchmark.predictors import (BASELINE_SIZE, PREDICTORS, TINY_BASELINE_SIZE,  # noqa: E402,F401
                                            hrsam_predictor_options, resolve_model_name, sam2_available)
from predictor_benchmark.report import environment, format_checks, format_table, write_json  # noqa: E402
from predictor_benchmark.runner import run_case  # noqa: E402
from predictor_benchmark.sam_sessions import SamSession  # noqa: E402,F401


def build_parser() -> argparse.ArgumentParser:
    """The command line (``finalize_args`` fills the defaults that depend on --tiny / the device)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default=None, help='cuda or cpu (default: cuda if available)')
    p.add_argument('--models', nargs='+', type=resolve_model_name, default=list(PREDICTORS),
                   help=f'predictors, of {list(PREDICTORS)} (default: all)')
    p.add_argument('--sizes', type=int, nargs='+', default=None,
                   help="HRSAM / HRSAM++ target sizes, run in this order after the checked cases (default "
                   "2048 4096 1024; --tiny: 64 128); "
                   f'the baselines run at {BASELINE_SIZE} ({TINY_BASELINE_SIZE} with --tiny)')
    p.add_argument('--clicks', type=int, default=20, help='predict calls per image (default 20)')
    p.add_argument('--images', type=int, default=3, help='timed images after the warm-up one (default 3)')
    p.add_argument('--image-size', type=int, nargs=2, default=None, metavar=('W', 'H'),
                   help='image width and height (default 4000 3000; --tiny: 160 120)')
    p.add_argument('--outputs', nargs='+', choices=OUTPUTS, default=list(OUTPUTS),
                   help='mask outputs to time (default: both)')
    p.add_argument('--hrsam-precision', choices=('auto', 'fp32', 'bf16', 'fp16'), default=None,
                   help="HRSAMPredictor(precision=...) (default: not passed, the predictor's default)")
    p.add_argument('--hrsam-compile', choices=('auto', 'on', 'off'), default=None,
                   help="HRSAMPredictor(compile=...) (default: not passed, the predictor's default)")
    p.add_argument('--hrsam-decoder-precision', choices=('auto', 'fp32', 'tf32'), default=None,
                   help="HRSAMPredictor(decoder_precision=...): the click step's fp32 products "
                        "(default: not passed, the predictor's default)")
    p.add_argument('--sam-fp32', action='store_true', help='also run the SAM baselines with fp32 set_image')
    p.add_argument('--no-profile', action='store_true', help='skip the profiled click pass (GPU time per click)')
    p.add_argument('--time-limit-s', type=float, default=None,
                   help='once the run took this long, record the remaining cases as skipped (default: none)')
    p.add_argument('--tiny', action='store_true', help='tiny models and image (smoke tests on CPU)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='work_dirs/benchmark_predictor.json', help='JSON output')
    return p


def finalize_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill defaults; reject options this checkout's predictor lacks (never silently dropped)."""
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda but CUDA is not available')
    if args.sizes is None:
        args.sizes = [64, 128] if args.tiny else [2048, 4096, 1024]  # 4096 (memory) before 1024
    if args.image_size is None:
        args.image_size = [160, 120] if args.tiny else [4000, 3000]
    if args.clicks < 1 or args.images < 1:
        raise SystemExit('--clicks and --images must be at least 1')
    if min(args.image_size) < 2:
        raise SystemExit(f'--image-size must be at least 2 x 2, got {args.image_size}')
    have = hrsam_predictor_options()
    for flag, option in (('--hrsam-precision', 'precision'), ('--hrsam-compile', 'compile'),
                         ('--hrsam-decoder-precision', 'decoder_precision')):
        if getattr(args, flag[2:].replace('-', '_')) is not None and not have[option]:
            raise SystemExit(f'{flag} given, but HRSAMPredictor has no {option!r} option in this checkout')
    return args


def run_cases(args: argparse.Namespace, device: torch.device, env: Dict) -> List[Dict]:
    """Run the planned cases in order; the JSON is rewritten after every case."""
    images = make_images(1 + args.images, *args.image_size, seed=args.seed)
    rows: List[Dict] = []
    bar = tqdm(plan(args), desc='predictor benchmark', unit='case')
    t_start = time.perf_counter()
    for case in bar:
        if args.time_limit_s is not None and not case.skip and time.perf_counter() - t_start > args.time_limit_s:
            case = case._replace(skip=f'--time-limit-s {args.time_limit_s:g} reached')
        bar.set_postfix_str(f'{case.model} {case.size}')
        row = run_case(case, args, device, images)
        rows.append(row)
        if row['status'] != 'ok':
            tqdm.write(f"{case.model} {case.size}: {row['status']} ({row['reason']})")
        write_json(args.out, env, rows, args.clicks)  # after every case, so an interrupted run keeps its rows
    bar.close()
    return rows


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = finalize_args(build_parser().parse_args(argv))
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    env = environment(args, device)
    rows = run_cases(args, device, env)
    checks = target_checks(rows, args.clicks)
    print(format_table(rows, args.clicks))
    print()
    print('\n'.join(comparisons(rows, args.clicks)))
    print(format_checks(checks))
    print(f'wrote {args.out}')
    return dict(env=env, results=rows, targets=checks)


if __name__ == '__main__':
    main()
