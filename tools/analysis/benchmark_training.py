"""Training-step speed: click training (quickstart and ViT-B 1024²) and SAM distillation with MFU.

Cases (``--cases``, all by default):

``quickstart``
    The quickstart config (a 4-block, width-128 HRSAM at 256², batch 4) trained through
    MMEngine's ``Runner`` exactly as ``tools/train.py CONFIG --amp`` does (bf16
    ``AmpOptimWrapper`` on CUDA; on the CPU plain fp32), for ``--warmup + --iters +
    --profile-iters`` iterations: seconds per iteration as the user sees them (data loading,
    hooks and the step; a device synchronize before each clock reading), median over the
    timed iterations. ``--workers N`` overrides ``train_dataloader.num_workers`` (the config
    loads in the main process, right for 2 CPU cores; on a GPU host workers take the scene
    generation off the critical path). Without DDP: ``dist_train.sh CONFIG 1`` adds a
    one-process DDP wrapper.
``click-vitb``
    One ``train_step`` of the ViT-B click-training config
    (``configs/multi_gpu/hrsam_kv-pad_2xb2_200it_synthetic-1024.py``: up to 20 simulated
    clicks) at 1024², batch ``--vitb-batch``, bf16 autocast, on ``--batches`` batches made
    once by the config's own synthetic pipeline and cycled (data loading not timed).
``distill``
    One ``train_step`` of the SAM-distillation config
    (``configs/multi_gpu/hrsam_kv-pad_2xb4_300it_synthetic-sam-distill-1024.py``) at 1024²,
    batch ``--distill-batch``, bf16 autocast. Its dataset needs stored teacher embeddings;
    here every sample gets a random image and a random (256, 64, 64) teacher embedding
    (``teacher_embedding`` of the data sample, what ``LoadTeacherEmbedding`` sets): the step's
    work does not depend on the values.

Per step case: median seconds, images/s, and the model-FLOPs utilization (MFU)::

    MFU = 3 x forward FLOPs of the image encoder x batch / step time / measured bf16 rate

* forward FLOPs: ``tools/analysis/count_flops.py``'s counter (torch's ``FlopCounterMode`` on
  fake tensors; a multiply-add = 2 FLOPs; matrix products, convolutions and the attention
  products QK^T and PV counted, element-wise work not; the Cycle-scan counted analytically),
  encoder only, batch 1, times the batch;
* forward + backward = 3 x forward (the backward computes gradients for inputs and weights:
  two products per forward product; it slightly overcounts the first convolution, whose
  input needs no gradient). The click case also runs SAM's decoder up to 21 times and the
  click simulation; they are not counted, so its MFU is a lower bound;
* the rate: the median time of a square ``--matmul-size`` bf16 matmul measured in the same
  run (fp32 on the CPU).

Variants (``--variants``, each a comma-joined set of options, compared in one run, every
case): ``eager``; ``compile`` (``backbone.compile()``: ``torch.compile`` of the image
encoder in place, default mode; the first steps include compilation, reported as
``compile_s``); ``fused`` (``AdamW(fused=True)``: one kernel per parameter group and step);
``channels_last`` (input batch and model in channels-last memory format); ``no_scaler``
(``AmpOptimWrapper(loss_scale=dict(enabled=False))``: MMEngine's wrapper, as
``tools/train.py --amp`` builds it, keeps a dynamic ``GradScaler`` even for bf16, which
costs an unscale pass, an inf check and a host sync per step, and bf16 needs no loss
scaling). E.g. ``--variants eager fused,no_scaler compile,fused,no_scaler``.

Profile (``--profile-iters`` > 0): after the timed iterations, ``torch.profiler`` over that
many steps; prints the top-15 ops by self device time (CUDA) and by self CPU time, and per
step the number of kernel launches, ``cudaStreamSynchronize`` / ``cudaDeviceSynchronize`` /
``cudaEventSynchronize`` calls and ``cudaMemcpy*`` calls (each synchronize stalls the host
until the device catches up).

``--time-limit`` bounds the whole run: timed loops stop early (never below 3 timed steps)
and cases that cannot start in time are recorded as skipped; a case or variant that fails
(out of memory, a failed compilation) is recorded with its error and the others still run.
``--tiny`` is a CPU smoke mode (the quickstart model at 64²-256², two iterations each) used by
the tests.

Examples::

    python tools/analysis/benchmark_training.py --out work_dirs/benchmark_training.json
    python tools/analysis/benchmark_training.py --cases distill --variants eager fused compile,fused
    python tools/analysis/benchmark_training.py --tiny --device cpu --out /tmp/bt.json

The code is split into the ``training_benchmark`` package next to this script (configs,
measure, profiling, step cases, quickstart, report); this file is the command line.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, Optional, Sequence

import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # training_benchmark, count_flops

import mmhrsam  # noqa: E402,F401  (registers everything)
from benchmark_common import dump_json  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

# The parts, re-exported for tests and for callers that import this script.
from training_benchmark.configs import (CASES, CLICK_VITB, DISTILL, QUICKSTART, ROOT,  # noqa: E402,F401
                                        VARIANT_OPTIONS, load_config, optim_cfg)
from training_benchmark.measure import Clock, OpCounter, matmul_rate, time_steps  # noqa: E402,F401
from training_benchmark.profiling import SYNC_CALLS, summarize_profile  # noqa: E402,F401
from training_benchmark.quickstart import ProbeHook, run_quickstart  # noqa: E402,F401
from training_benchmark.report import guarded, report  # noqa: E402
from training_benchmark.step_cases import run_step_case, step_cases  # noqa: E402,F401


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cases', nargs='+', choices=CASES, default=list(CASES))
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--iters', type=int, default=30, help='timed iterations (quickstart)')
    parser.add_argument('--step-iters', type=int, default=10, help='timed steps (click-vitb, distill)')
    parser.add_argument('--warmup', type=int, default=5, help='untimed iterations first')
    parser.add_argument('--profile-iters', type=int, default=3, help='profiled steps after timing (0: none)')
    parser.add_argument('--workers', type=int, default=None,
                        help='quickstart: train_dataloader.num_workers (default: the config\'s)')
    parser.add_argument('--vitb-batch', type=int, default=4)
    parser.add_argument('--distill-batch', type=int, default=8)
    parser.add_argument('--batches', type=int, default=2, help='distinct batches cycled by the step cases')
    parser.add_argument('--variants', nargs='+', default=['eager'],
                        help=f'comma-joined sets of {VARIANT_OPTIONS}')
    parser.add_argument('--matmul-size', type=int, default=8192)
    parser.add_argument('--time-limit', type=float, default=170.0, help='seconds for the whole run')
    parser.add_argument('--tiny', action='store_true', help='CPU smoke mode: tiny models and sizes')
    parser.add_argument('--out', default=None, help='JSON output')
    return parser


def finalize_args(args: argparse.Namespace) -> argparse.Namespace:
    """Check the variants and apply the --tiny sizes."""
    args.variants = [tuple(v.split(',')) for v in args.variants]
    for variant in args.variants:
        unknown = set(variant) - set(VARIANT_OPTIONS)
        if unknown or ('eager' in variant and len(variant) > 1):
            raise ValueError(f'variant {",".join(variant)!r}: options are {VARIANT_OPTIONS}, '
                             "'eager' alone")
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError('--device cuda but CUDA is not available')
    if args.tiny:
        args.iters, args.step_iters, args.warmup = min(args.iters, 2), min(args.step_iters, 2), 1
        args.vitb_batch, args.distill_batch, args.batches = 2, 2, 1
        args.matmul_size = min(args.matmul_size, 256)
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = finalize_args(build_parser().parse_args(argv))
    clock = Clock(args.time_limit)
    DefaultScope.get_instance(f'benchmark_training_{time.time()}', scope_name='mmhrsam')
    rate = matmul_rate(args.device, args.matmul_size)
    print(f"matmul {rate['size']}³ {rate['dtype']}: {rate['flops_per_s'] / 1e12:.1f} TFLOP/s", flush=True)
    results = []
    for variant in args.variants if 'quickstart' in args.cases else []:
        results.append(guarded('quickstart', variant, clock, lambda: run_quickstart(args, variant, clock)))
        report(results[-1])
    results += step_cases(args, clock, rate['flops_per_s'])
    out = dict(device=torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu',
               torch=torch.__version__, matmul=rate, tiny=args.tiny, results=results,
               mfu_method='3 x forward FLOPs of the image encoder (count_flops.py: matmuls, convolutions, '
                          'attention products, analytic Cycle-scan; multiply-add = 2) x batch / step time / '
                          'measured matmul rate; decoder and click simulation not counted')
    for result in results:
        if result.get('profile'):
            result['profile'].pop('tables')  # printed; the JSON keeps the counts
        result.pop('times_s', None)
    if args.out:
        dump_json(args.out, out)
        print(f'wrote {args.out}')
    return out


if __name__ == '__main__':
    main()
