"""Cycle-scan's scan on one GPU: the periodic Triton op against the plain scan of the repeated sequence.

One Cycle-scan at 2048² scans R = 3 copies of a 16,384-token sequence (the reference mamba-ssm timings
in docs/benchmarks.md are for that L = 3 x 16,384 call). ``cycle_selective_scan`` (triton backend) computes the
same gamma-weighted sum of the copies from one copy. This script, in one run:

1. correctness at full size (batch 1, D = 768, N = 32, L0 = 16,384, R = 3, fp32 and bf16): the
   periodic op against the definition (repeat the inputs, triton's plain scan over L = 49,152,
   weight and sum) for the output and all eight gradients (gamma's included), and its fp32
   forward against the float64 sequential reference on a channel slice;
2. timings (CUDA-event medians, warm-up excluded; forward also as a CUDA-graph replay) of the
   periodic op and of the plain triton scan over the repeated sequence (the kernel call alone,
   inputs already repeated, which is what the reference mamba-ssm figures time), forward and
   forward + backward, fp32 and bf16, at L0 = 16,384 and 65,536;
3. device time per kernel of the periodic op (torch.profiler), forward + backward, bf16;
4. the scan targets of the issue (forward <= 0.9 ms fp32 / 0.7 ms bf16, forward + backward
   <= 4.5 ms bf16, growth to 4x the length <= 4.3x), PASS / MISS, and JSON (``--out``).

Example::

    python3 tools/analysis/benchmark_cycle_scan.py --out $OUT/cycle_scan_h100.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark_scan as bs  # noqa: E402  (shared input maker, timers, profiler rows)
from mmhrsam.ops.selective_scan import repeat_cycle_selective_scan  # noqa: E402

COPIES = 3
LENGTHS = (16384, 65536)  # one copy; L = 3 x these
NAMES = ('y', 'du', 'ddelta', 'dA', 'dB', 'dC', 'dD', 'dbias', 'dgamma')
TARGETS = {'fwd fp32': 0.9, 'fwd bf16': 0.7, 'fwd+bwd bf16': 4.5}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='work_dirs/benchmark_cycle_scan.json', help='JSON output')
    p.add_argument('--repeats', type=int, default=30)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--no-check', action='store_true', help='skip the correctness checks')
    p.add_argument('--no-plain', action='store_true', help='skip timing the plain scan of the repeated sequence')
    p.add_argument('--sweep', default=None,
                   help='JSON list of ScanTuning fields for the periodic forward, e.g. \'[{"fwd_warps": 2}]\' '
                   '(times only those and the defaults, eager and graph, fp32 and bf16, then exits)')
    return p.parse_args()


def make_inputs(length: int, dtype: torch.dtype, seed: int = 0):
    """Cycle-scan-like inputs for one copy, plus gamma (D, R) near its initial value 1."""
    args = bs.make_inputs(1, length, dtype, seed=seed)
    g = torch.Generator(device=bs.DEVICE).manual_seed(seed + 100)
    gamma = 1 + 0.2 * torch.randn(bs.CHANNELS, COPIES, device=bs.DEVICE, generator=g)
    return args + [gamma]


def periodic(*args):
    from mmhrsam.ops.selective_scan.triton_cycle_scan import triton_cycle_selective_scan
    return triton_cycle_selective_scan(*args)


def by_definition(*args):
    return repeat_cycle_selective_scan(*args, backend='triton')


def check(results: dict) -> None:
    for dtype in (torch.float32, torch.bfloat16):
        tag = str(dtype).replace('torch.', '')
        args = make_inputs(LENGTHS[0], dtype, seed=1)
        dy = torch.randn(args[0].shape, device=bs.DEVICE, generator=torch.Generator(bs.DEVICE).manual_seed(2))
        ours = bs.grads(periodic, args, dy)
        theirs = bs.grads(by_definition, args, dy)
        errs = {n: bs.rel_err(a, b) for n, a, b in zip(NAMES, ours, theirs)}
        finite = all(torch.isfinite(t).all().item() for t in ours)
        bs.log(f'  periodic vs repeated ({tag}): ' + ' '.join(f'{k} {v:.1e}' for k, v in errs.items()) +
               f' finite={finite}')
        results['checks'][f'periodic_vs_repeated_{tag}'] = dict(rel_err=errs, finite=finite)
    idx = torch.tensor([0, 97, 300, 511, 767], device=bs.DEVICE) % bs.CHANNELS
    u, delta, A, B, C, D, bias, gamma = make_inputs(LENGTHS[0], torch.float32, seed=3)
    sl = (u[:, idx], delta[:, idx], A[idx], B, C, D[idx], bias[idx], gamma[idx])
    with torch.no_grad():
        y_ref = repeat_cycle_selective_scan(*[t.double() for t in sl], backend='reference')
        e = bs.rel_err(periodic(*sl), y_ref)
    bs.log(f'  periodic vs float64 reference, fp32 forward, 5 channels: {e:.1e}')
    results['checks']['periodic_vs_float64_fwd_fp32'] = e
    ok = e < 1e-4 and all(
        results['checks'][f'periodic_vs_repeated_{t}']['finite'] and
        max(results['checks'][f'periodic_vs_repeated_{t}']['rel_err'].values()) < (1e-3 if t == 'float32' else 5e-2)
        for t in ('float32', 'bfloat16'))  # both dtypes finite and close
    results['checks']['all_ok'] = ok
    bs.log(f'  correctness: {"PASS" if ok else "CHECK"}')


def timings(results: dict, warmup: int, repeats: int, plain: bool) -> None:
    for length in LENGTHS:
        for dtype in (torch.float32, torch.bfloat16):
            tag = str(dtype).replace('torch.', '')
            args = make_inputs(length, dtype, seed=5)
            dy = torch.randn(args[0].shape, device=bs.DEVICE, dtype=dtype)
            cases = [('periodic', periodic, args, dy)]
            if plain:
                rep = [t.repeat(1, 1, COPIES) if t.dim() == 3 else t for t in args[:7]]
                cases.append(('plain scan of the repeat', bs.triton_fn(), rep, dy.repeat(1, 1, COPIES)))
            for name, fn, a, g in cases:
                row = dict(op=name, dtype=tag, copy_length=length, L=COPIES * length,
                           fwd_ms=bs.time_ms(bs.call(fn, a, False), warmup, repeats),
                           fwd_graph_ms=bs.graph_ms(bs.call(fn, a, False), repeats),
                           fwd_bwd_ms=bs.time_ms(bs.call(fn, a, True, g), warmup, repeats))
                updates = a[0].shape[0] * bs.CHANNELS * bs.D_STATE * COPIES * length  # of the R-copy scan
                row['G_updates_per_s_fwd'] = updates / row['fwd_ms'] / 1e6
                results['timings'].append(row)
                bs.log(f'  {name:26s} {tag:8s} L0={length:6d}: fwd {row["fwd_ms"]:.3f} ms '
                       f'(graph {row["fwd_graph_ms"] or float("nan"):.3f}), fwd+bwd {row["fwd_bwd_ms"]:.3f} ms')
                torch.cuda.empty_cache()


def sweep(results: dict, configs: list, warmup: int, repeats: int) -> None:
    """The periodic forward with the default tuning, then with each of ``configs`` (dicts of ScanTuning fields)."""
    from mmhrsam.ops.selective_scan.triton_cycle_scan import triton_cycle_selective_scan
    from mmhrsam.ops.selective_scan.triton_scan import ScanTuning
    tunings = [ScanTuning()] + [ScanTuning(**c) for c in configs]
    for dtype in (torch.float32, torch.bfloat16):
        args = make_inputs(LENGTHS[0], dtype, seed=5)
        for tuning in tunings:
            def fn(*a, tuning=tuning):
                return triton_cycle_selective_scan(*a, tuning=tuning)
            row = dict(dataclasses.asdict(tuning), dtype=str(dtype).replace('torch.', ''),
                       fwd_ms=bs.time_ms(bs.call(fn, args, False), warmup, repeats),
                       fwd_graph_ms=bs.graph_ms(bs.call(fn, args, False), repeats))
            results['sweep'].append(row)
            bs.log(f'  {row}')


def profile(results: dict) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile
    args = make_inputs(LENGTHS[0], torch.bfloat16, seed=3)
    dy = torch.randn(args[0].shape, device=bs.DEVICE, dtype=torch.bfloat16)
    run = bs.call(periodic, args, True, dy)
    run()
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            run()
        torch.cuda.synchronize()
    rows = {e.key: e.device_time_total / 5 / 1e3 for e in prof.key_averages() if getattr(e, "device_time_total", 0)}
    results['profile_bf16_fwd_bwd_ms'] = rows
    bs.log(f'  periodic bf16 fwd+bwd L0={LENGTHS[0]}, ms per call by kernel:')
    for key, ms in sorted(rows.items(), key=lambda kv: -kv[1])[:14]:
        bs.log(f'    {ms:8.3f}  {key[:90]}')


def verdicts(results: dict) -> None:
    def ms(dtype, length, what):
        return next(r[what] for r in results['timings']
                    if r['op'] == 'periodic' and r['dtype'] == dtype and r['copy_length'] == length)
    short, long = LENGTHS
    checks = {
        'fwd fp32': (ms('float32', short, 'fwd_ms'), TARGETS['fwd fp32']),
        'fwd bf16': (ms('bfloat16', short, 'fwd_ms'), TARGETS['fwd bf16']),
        'fwd+bwd bf16': (ms('bfloat16', short, 'fwd_bwd_ms'), TARGETS['fwd+bwd bf16']),
    }
    for dtype, what in (('float32', 'fwd_ms'), ('bfloat16', 'fwd_ms'), ('bfloat16', 'fwd_bwd_ms')):
        checks[f'scaling {what} {dtype} x4'] = (ms(dtype, long, what) / ms(dtype, short, what), 4.3)
    for name, (value, limit) in checks.items():
        results['targets'][name] = dict(value=value, limit=limit, ok=value <= limit)
        bs.log(f'  {name:28s} {value:7.3f} (<= {limit})  {"PASS" if value <= limit else "MISS"}')


def main():
    args = parse_args()
    assert torch.cuda.is_available(), 'needs a CUDA device'
    import triton
    dev = torch.cuda.get_device_properties(0)
    results = dict(device=dev.name, sms=dev.multi_processor_count, torch=torch.__version__,
                   triton=triton.__version__, copies=COPIES, channels=bs.CHANNELS, d_state=bs.D_STATE,
                   checks={}, timings=[], targets={})
    bs.log(f'{dev.name} ({dev.multi_processor_count} SMs), torch {torch.__version__}, triton {triton.__version__}')
    t0 = time.time()
    if args.sweep:
        results['sweep'] = []
        sweep(results, json.loads(args.sweep), args.warmup, args.repeats)
    else:
        if not args.no_check:
            bs.log('== correctness at full size')
            check(results)
        bs.log('== timings')
        timings(results, args.warmup, args.repeats, not args.no_plain)
        bs.log('== per-kernel profile')
        profile(results)
        bs.log('== targets (periodic op, L = 3 x L0)')
        verdicts(results)
    results['seconds'] = time.time() - t0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=1)
    bs.log(f'wrote {args.out} ({results["seconds"]:.0f} s)')


if __name__ == '__main__':
    main()
