"""Latency and peak memory of whole image encoders at 1024², 2048², 3072², 4096² (batch 1).

Encoders (built through ``mmhrsam.registry.MODELS``, ViT-B sizes unless noted):

============  ======================================================================  ==================
label         config                                                                  paper
============  ======================================================================  ==================
Global        HRSAM, ``attn_cfg=GlobalAttention``, no Cycle-scan                      Table 3: Global
FlashSwin     HRSAM, ``attn_cfg=FlashSwinAttention``, no Cycle-scan                   Table 3: Flash Swin
KVPadSwin     HRSAM, ``attn_cfg=KVPadSwinAttention``, no Cycle-scan                   Table 3: + KV padding
HRSAM         ``dict(type='HRSAM')``                                                  Table 3: + Cycle-scan
HRSAM++       ``dict(type='HRSAMPlusPlus')``                                          Table 3: + multi-scale
PlainSwin     HRSAM, ``attn_cfg=PlainSwinAttention``, no Cycle-scan                   Fig. 5 baseline
SAM-ViT-B     ``dict(type='SAMViT', arch='vit-b', img_size=S)``, built per size S     SAM baseline
SAM-ViT-H     ``dict(type='SAMViT', arch='vit-h', img_size=S)``, built per size S     SAM baseline
SAM-Light     ``dict(type='SAMLightening', arch='vit-s')`` (pos-embed resized)          SAM-Lightening
============  ======================================================================  ==================

(SAM-Light is the label ``SAM-Lightening``.)

Random weights, random-normal input, ``model.eval()`` and ``torch.no_grad()``. CUDA: bf16
autocast (``--precision``), CPU: fp32. Latency is the median over timed runs,
device-synchronized (CUDA events on CUDA), warm-up excluded; a case stops timing once its
timed runs exceed ``--case-budget-s`` (never below ``--min-repeats`` runs). Modes: ``eager``;
``graph`` (``--cuda-graph``: the whole encoder forward captured once in a CUDA graph after
warm-up, replays timed; a failed capture is recorded in the row and the run goes on; SAM's
encoders run it with the GPU as default device, see ``Encoder.host_factories``);
``compile`` (``--compile``: ``torch.compile(model, dynamic=False)``, default mode,
compiled afresh for every size; the compile time is reported).

Peak memory (CUDA, eager and compile rows, measured by one extra forward after the timed
runs)::

    weights_mib   parameters + buffers as stored (fp32 under autocast); also on CPU
    input_mib     the input image
    cache_mib     memory that stays allocated after warm-up (index maps, RoPE tables, ...)
    act_peak_mib  torch.cuda.max_memory_allocated() during one forward minus what was
                  allocated before it: activations, autocast weight copies, output;
                  model weights EXCLUDED
    peak_mib      weights + input + cache + act_peak: the encoder's whole footprint at its
                  peak, model weights INCLUDED (what the 4 GiB target is checked against)

Sizes a model cannot sensibly run at are printed as ``skipped (reason)`` rows, never
dropped: dense global attention above ``--max-global-tokens`` tokens, and models that
materialize the N x N attention scores (SAM's global blocks compute ``q @ k^T``, add the
decomposed relative-position bias and softmax in fp32) when those scores would exceed
``--max-attn-matrix-gib``. Any other failure (out of memory, capture error) becomes an
``error`` row and the run continues.

``--breakdown`` times one eager forward of each ``--breakdown-models`` model at
``--breakdown-size`` by parts, with CUDA events (wall clock on CPU) recorded around the
submodules in forward pre/post hooks (or wrappers of the method the backbone calls, e.g.
HRSAM++'s ``fuse_scales``) and summed after one synchronize per forward: attention (every
``blocks[i].attn``), mlp (``blocks[i].mlp`` + ``norm1``/``norm2``), cycle_scan
(``mamba_blocks`` / ``ss_mamba_blocks`` / ``ms_mamba_blocks``), and the rest, split into
embed (patch embedding + pos-embed, HRSAM++'s anchor resize) and fusion (stage features,
lateral projections, out conv; SAM's neck). What no part covers (residual adds, splits,
gaps between kernels) is ``unaccounted``; the parts must cover the total within 10%.

The JSON (``--out``) is rewritten after every case; the tables and the target checks of the
issue (PASS / MISS with the numbers) are printed at the end and stored under ``targets``.
SAM-Lightening's published figures (7 ms per 1024² image, 30.1x faster than SAM ViT-H,
244 MB of memory, 3.5 % of SAM's) are compared with the same run's rows under ``claims``;
what the paper's memory figure counted is unknown, so weights, activation peak and total
are listed separately there.

The code is split into the ``encoder_benchmark`` package next to this script (encoder table,
timing-mode table, plan, measurement, breakdown, checks, report); this file is the command line.

Examples::

    python tools/analysis/benchmark_encoder.py                # CPU: HRSAM, SAM-ViT-B at 1024², fp32
    python tools/analysis/benchmark_encoder.py --sizes 256 --models HRSAM SAM-ViT-B --repeats 1 --warmup 0
    # one H100 run in about 8 minutes: every encoder and size, bf16 autocast, eager + CUDA graph
    python tools/analysis/benchmark_encoder.py --device cuda --cuda-graph --breakdown --time-limit-s 450 \\
        --out work_dirs/benchmark_encoder.json
    # SAM-Lightening beside SAM ViT-B / ViT-H and HRSAM, 1024² / 2048² / 4096², in one run
    python tools/analysis/benchmark_encoder.py --device cuda --cuda-graph --models SAM-Lightening SAM-ViT-B \\
        SAM-ViT-H HRSAM --sizes 1024 2048 4096 --breakdown --breakdown-models SAM-Lightening \\
        --breakdown-size 1024 --out work_dirs/benchmark_encoder_sam-lightening.json
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, Optional, Sequence

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the encoder_benchmark package

import mmhrsam.models  # noqa: E402,F401  (registers the encoders)
# The parts, re-exported for tests and for callers that import this script.
from encoder_benchmark.breakdown import BREAKDOWN_PARTS, PartRecorder, instrument  # noqa: E402,F401
from encoder_benchmark.checks import fast_path_checks, lightening_claims, target_checks  # noqa: E402,F401
from encoder_benchmark.encoders import CPU_MODELS, CUDA_MODELS, ENCODERS, resolve_model_name  # noqa: E402
from encoder_benchmark.measure import Runner, make_forward, on_default_device  # noqa: E402,F401
from encoder_benchmark.modes import TIMING_MODES, add_mode_arguments  # noqa: E402,F401
from encoder_benchmark.planning import GIB, SCORE_BYTES, plan  # noqa: E402
from encoder_benchmark.report import (environment, format_breakdown, format_checks, format_pivot,  # noqa: E402
                                      format_table, write_json)


def build_parser() -> argparse.ArgumentParser:
    """The command line (``finalize_args`` fills the device-dependent defaults)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default=None, help='cuda or cpu (default: cuda if available)')
    p.add_argument('--models', nargs='+', type=resolve_model_name, default=None,
                   help=f'encoders, of {list(ENCODERS)} (default: all on CUDA, target rows first; '
                   f'{" ".join(CPU_MODELS)} on CPU)')
    p.add_argument('--sizes', type=int, nargs='+', default=None,
                   help='square input sides (default 1024 2048 3072 4096 on CUDA, 1024 on CPU)')
    p.add_argument('--precision', choices=tuple(SCORE_BYTES), default=None,
                   help='autocast-bf16 (fp32 weights, bf16 autocast), bf16 (weights cast), fp32 '
                   '(default autocast-bf16 on CUDA, fp32 on CPU)')
    p.add_argument('--repeats', type=int, default=None, help='timed runs at most (default 20 CUDA, 3 CPU)')
    p.add_argument('--warmup', type=int, default=None, help='untimed runs at most (default 5 CUDA, 1 CPU)')
    p.add_argument('--min-repeats', type=int, default=None, help='timed runs at least (default 3 CUDA, 1 CPU)')
    p.add_argument('--case-budget-s', type=float, default=None,
                   help='stop warm-up / timing of a case once they took this long (default 3 CUDA, 60 CPU)')
    add_mode_arguments(p)  # --cuda-graph, --compile: one switch per timing mode (modes.TIMING_MODES)
    p.add_argument('--breakdown', action='store_true', help='per-part timing (attention, MLP, Cycle-scan, rest)')
    p.add_argument('--breakdown-models', nargs='+', type=resolve_model_name, default=['HRSAM'],
                   help='encoders to break down (default HRSAM)')
    p.add_argument('--breakdown-size', type=int, default=None,
                   help='input side of the breakdown (default 2048 on CUDA, the first --sizes on CPU)')
    p.add_argument('--max-global-tokens', type=int, default=None,
                   help='skip dense global attention over more tokens (default 65536 CUDA, 4096 CPU)')
    p.add_argument('--max-attn-matrix-gib', type=float, default=None,
                   help='skip models whose materialized attention scores exceed this '
                   '(default 75%% of the GPU memory, 8 on CPU)')
    p.add_argument('--time-limit-s', type=float, default=None,
                   help='once the run took this long, record the remaining cases as skipped (default: none)')
    p.add_argument('--tiny', action='store_true', help='tiny configs of every encoder (smoke tests)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='work_dirs/benchmark_encoder.json', help='JSON output')
    return p


def finalize_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill device-dependent defaults."""
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    cuda = torch.device(args.device).type == 'cuda'
    if cuda and not torch.cuda.is_available():
        raise SystemExit('--device cuda but CUDA is not available')

    def default(name, on_cuda, on_cpu):
        if getattr(args, name) is None:
            setattr(args, name, on_cuda if cuda else on_cpu)

    default('models', list(CUDA_MODELS), list(CPU_MODELS))
    default('sizes', [1024, 2048, 3072, 4096], [1024])
    default('precision', 'autocast-bf16', 'fp32')
    default('repeats', 20, 3)
    default('warmup', 5, 1)
    default('min_repeats', 3, 1)
    default('case_budget_s', 3.0, 60.0)
    default('breakdown_size', 2048, args.sizes[0])
    default('max_global_tokens', 65536, 4096)
    if args.max_attn_matrix_gib is None:
        total = torch.cuda.get_device_properties(torch.device(args.device)).total_memory if cuda else 0
        args.max_attn_matrix_gib = 0.75 * total / GIB if cuda else 8.0
    args.repeats = max(1, args.repeats)
    args.warmup = max(0, args.warmup)
    args.min_repeats = max(1, min(args.min_repeats, args.repeats))
    return args


def run_cases(args: argparse.Namespace, device: torch.device, env: Dict) -> list:
    """Run the planned cases in order; the JSON is rewritten after every case."""
    runner, rows = Runner(args, device), []
    bar = tqdm(plan(args, device), desc='encoder benchmark', unit='case')
    t_start = time.perf_counter()
    for case in bar:
        if args.time_limit_s is not None and not case.skip and time.perf_counter() - t_start > args.time_limit_s:
            case = case._replace(skip=f'--time-limit-s {args.time_limit_s:g} reached')
        bar.set_postfix_str(f'{case.model} {case.size}² {case.mode}')
        row = runner.run(case)
        rows.append(row)
        if row['status'] != 'ok':
            tqdm.write(f"{case.model} {case.size}² {case.mode}: {row['status']} ({row['reason']})")
        write_json(args.out, env, rows)  # after every case, so an interrupted run keeps its rows
    bar.close()
    runner.release()
    return rows


def print_report(rows: Sequence[Dict], checks: Sequence[Dict], claims: Sequence[Dict]) -> None:
    """The latency pivot, the breakdowns, the full table, the target checks and claims."""
    print(format_pivot(rows))
    print()
    breakdown = format_breakdown(rows)
    if breakdown:
        print(breakdown)
        print()
    print(format_table(rows))
    print()
    print(format_checks(checks))
    if claims:
        print('SAM-Lightening against its paper:')
        print(format_checks(claims))


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = finalize_args(build_parser().parse_args(argv))
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    env = environment(args, device)
    rows = run_cases(args, device, env)
    checks, claims = target_checks(rows) + fast_path_checks(rows), lightening_claims(rows)
    print_report(rows, checks, claims)
    print(f'wrote {args.out}')
    return dict(env=env, results=rows, targets=checks, claims=claims)


if __name__ == '__main__':
    main()
