"""Selective-scan backends on one GPU: correctness at full size, timings, and the scan targets.

What it does, in one run (about 3-5 minutes on an H100, most of it Triton's first JIT compiles and
the chunked backend's slow backward):

1. correctness at the full Cycle-scan size (batch 1, D = 768, N = 32, L = 3 x 16,384): triton
   against the chunked backend (forward and every gradient, fp32 and bf16), and against the
   float64 sequential reference on a channel slice (forward at full L, gradients at L = 4,096);
2. first-call latency (Triton JIT included) of the forward and the backward;
3. a small sweep of the forward's launch configuration (chunk length, warps, polynomial exp2
   rows) at L = 49,152 bf16, then timings of forward and forward + backward for fp32 and bf16 at
   L = 3 x 16,384 and 3 x 65,536, for triton (default configuration), chunked (forward only at
   the large size), and mamba-ssm when it imports; eager calls timed with CUDA events (median,
   warm-up excluded), and the triton forward also as a CUDA-graph replay (device time without
   launch gaps);
4. achieved bandwidth (bytes of the call's inputs and outputs / time) and state-update rate
   (B * D * N * L / time) against the floors: ~4.2 T exp/s on the SFUs (one exp per update and
   pass; the chunked design makes two passes forward, five backward) and ~3 TB/s;
5. the targets, printed PASS / MISS, a compact table, and everything as JSON (``--out``).

This times the plain scan of a sequence of length L. Cycle-scan's own call (three copies of one
sequence, weighted) runs as a periodic op that meets the scan targets:
``tools/analysis/benchmark_cycle_scan.py``.

Example::

    python tools/analysis/benchmark_scan.py --out $OUT/scan_h100.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from typing import Callable, Dict, List, Optional

import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))

from mmhrsam.ops.selective_scan import (chunked_selective_scan, mamba_ssm_selective_scan,  # noqa: E402
                                                 reference_selective_scan)
from mmhrsam.ops.selective_scan.mamba_ssm import mamba_ssm_unavailable  # noqa: E402
from mmhrsam.utils.benchmark import capture_cuda_graph, sync, time_fn  # noqa: E402

CHANNELS, D_STATE = 768, 32
LENGTHS = (3 * 16384, 3 * 65536)
GRAD_REF_LENGTH = 4096
DEVICE = 'cuda'
EXP_RATE = 4.2e12  # exp2 per second on an H100's SFUs (docs/benchmarks.md)
BANDWIDTH = 3.0e12  # bytes per second, HBM3
#: (what, limit): milliseconds, or a ratio for 'scaling'
TARGETS = {
    'fwd fp32 L=49152': 0.9,
    'fwd bf16 L=49152': 0.7,
    'fwd+bwd bf16 L=49152': 4.5,
    'scaling fwd fp32 L=196608/49152': 4.3,
    'scaling fwd bf16 L=196608/49152': 4.3,
    'scaling fwd+bwd bf16 L=196608/49152': 4.3,
}
#: reference figures (docs/benchmarks.md): mamba-ssm selective_scan_fn on the same H100 (ms)
MAMBA_REFERENCE = {'fwd fp32 L=49152': 2.65, 'fwd bf16 L=49152': 1.88, 'fwd+bwd bf16 L=49152': 8.1,
                   'fwd bf16 L=196608': 7.75}


def log(*args):
    print(*args, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='work_dirs/benchmark_scan.json', help='JSON output')
    p.add_argument('--repeats', type=int, default=30, help='timed calls per triton / mamba-ssm case')
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--no-sweep', action='store_true', help='skip the forward configuration sweep')
    p.add_argument('--no-check', action='store_true', help='skip the correctness checks')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--backends', nargs='+', default=None,
                   help='time only these backends (default: triton, chunked and mamba_ssm when it imports)')
    p.add_argument('--sweep-json', default=None,
                   help='replace the sweep by these configurations: a JSON list of dicts of ScanTuning fields '
                   '(chunk, fwd_warps, npoly, red, block_d), e.g. \'[{"chunk": 256, "fwd_warps": 2, "red": 2}]\'')
    p.add_argument('--sweep-bwd', action='store_true', help='the sweep also times forward + backward')
    p.add_argument('--profile', action='store_true',
                   help='per-kernel device times of the triton forward and backward (torch.profiler)')
    p.add_argument('--smoke', action='store_true',
                   help='CPU dry run of this script through the Triton interpreter at tiny sizes (tests the script)')
    return p.parse_args()


def make_inputs(batch: int, length: int, dtype: torch.dtype, device=None, seed: int = 0, channels=None):
    """Cycle-scan-like inputs: A = -(1..N) per channel (the init, jittered), dt ~ logU[1e-3, 1e-1]."""
    device, channels = device or DEVICE, channels or CHANNELS
    g = torch.Generator(device=device).manual_seed(seed)
    u = torch.randn(batch, channels, length, device=device, generator=g)
    delta = 0.5 * torch.randn(batch, channels, length, device=device, generator=g)
    A = -torch.arange(1, D_STATE + 1, device=device, dtype=torch.float32).repeat(channels, 1)
    A = A * torch.exp(0.3 * torch.randn(channels, D_STATE, device=device, generator=g))
    B = torch.randn(batch, D_STATE, length, device=device, generator=g)
    C = torch.randn(batch, D_STATE, length, device=device, generator=g)
    D = torch.ones(channels, device=device)
    dt = torch.exp(torch.rand(channels, device=device, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    delta_bias = dt + torch.log(-torch.expm1(-dt))  # inverse softplus
    return [t.to(dtype) if t.dim() == 3 else t for t in (u, delta, A, B, C, D, delta_bias)]


def triton_fn(tuning=None) -> Callable:
    """The triton scan with a ScanTuning (None: the defaults)."""
    from mmhrsam.ops.selective_scan.triton_scan import triton_selective_scan

    def fn(*args):
        return triton_selective_scan(*args, tuning=tuning)

    return fn


def backends(only=None) -> Dict[str, Callable]:
    out = {'triton': triton_fn(), 'chunked': chunked_selective_scan}
    if mamba_ssm_unavailable(torch.zeros(1, device=DEVICE)) is None:
        out['mamba_ssm'] = mamba_ssm_selective_scan
    return {k: v for k, v in out.items() if only is None or k in only}


def profile_kernels(results: dict, batch: int) -> None:
    """Device time per Triton kernel (where the forward and backward spend their time)."""
    from torch.profiler import ProfilerActivity, profile
    for dtype in (torch.bfloat16, torch.float32):
        inputs = make_inputs(batch, LENGTHS[0], dtype, seed=3)
        dy = torch.randn(inputs[0].shape, device=DEVICE, dtype=dtype)
        run = call(triton_fn(), inputs, True, dy)
        run()
        sync(torch.device(DEVICE))
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                run()
            sync(torch.device(DEVICE))
        rows = {}
        for evt in prof.key_averages():
            if evt.device_type.name == 'CUDA' or getattr(evt, 'device_time_total', 0):
                rows[evt.key] = getattr(evt, 'device_time_total', 0) / 5 / 1e3
        tag = str(dtype).replace('torch.', '')
        results.setdefault('profile', {})[tag] = rows
        log(f'  {tag} fwd+bwd L={LENGTHS[0]}, ms per call by kernel:')
        for key, ms in sorted(rows.items(), key=lambda kv: -kv[1])[:12]:
            log(f'    {ms:8.3f}  {key[:90]}')


def time_ms(fn: Callable, warmup: int, repeats: int) -> float:
    """Median milliseconds of fn() (CUDA events on the GPU), warm-up excluded."""
    return time_fn(fn, torch.device(DEVICE), warmup, repeats)['ms']


def graph_ms(fn: Callable, repeats: int) -> Optional[float]:
    """Median milliseconds of a CUDA-graph replay of fn() (None if capture fails)."""
    if DEVICE != 'cuda':
        return None
    try:
        _, replay = capture_cuda_graph(fn, torch.device(DEVICE))
        return time_ms(replay, 3, repeats)
    except Exception as e:  # noqa: BLE001
        log(f'  (graph capture failed: {type(e).__name__}: {e})')
        return None


def call(fn, args, backward: bool, dy: Optional[torch.Tensor] = None) -> Callable:
    if not backward:
        def run():
            with torch.no_grad():
                fn(*args)
        return run
    leaves = [t.detach().clone().requires_grad_() for t in args]

    def run_bwd():
        for t in leaves:
            t.grad = None
        fn(*leaves).backward(dy)
    return run_bwd


def io_bytes(args, backward: bool) -> int:
    """Bytes the call must read and write at least: inputs and output (forward); plus dy and the gradients."""
    inputs = sum(t.numel() * t.element_size() for t in args)
    y = args[0].numel() * args[0].element_size()
    return inputs + y if not backward else 2 * inputs + 2 * y  # (fwd + bwd) read inputs twice, dy, grads


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def grads(fn, args, dy) -> List[torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in args]
    y = fn(*leaves)
    y.backward(dy.to(y.dtype))
    return [y.detach()] + [t.grad for t in leaves]


NAMES = ('y', 'du', 'ddelta', 'dA', 'dB', 'dC', 'dD', 'dbias')


def check_correctness(results: dict) -> None:
    tri = triton_fn()
    length = LENGTHS[0]
    for dtype in (torch.float32, torch.bfloat16):
        tag = str(dtype).replace('torch.', '')
        args = make_inputs(1, length, dtype, seed=1)
        dy = torch.randn(args[0].shape, device=DEVICE, generator=torch.Generator(DEVICE).manual_seed(2))
        t0 = time.time()
        ours = grads(tri, args, dy)
        theirs = grads(chunked_selective_scan, args, dy)
        errs = {n: rel_err(a, b) for n, a, b in zip(NAMES, ours, theirs)}
        finite = all(torch.isfinite(t).all().item() for t in ours)
        log(f'  triton vs chunked, {tag}, L={length}: ' + ' '.join(f'{k} {v:.1e}' for k, v in errs.items()) +
            f' finite={finite} ({time.time() - t0:.0f}s)')
        results['checks'][f'triton_vs_chunked_{tag}'] = dict(rel_err=errs, finite=finite)
        del ours, theirs
        torch.cuda.empty_cache()
    # float64 reference on a channel slice (channels are independent): forward at full L, gradients at 4096
    idx = torch.tensor([0, 97, 300, 511, 767], device=DEVICE) % CHANNELS
    args = make_inputs(1, length, torch.float32, seed=3)
    sl = [args[0][:, idx], args[1][:, idx], args[2][idx], args[3], args[4], args[5][idx], args[6][idx]]
    t0 = time.time()
    with torch.no_grad():
        y_ref = reference_selective_scan(*[t.double() for t in sl])
        y_tri = tri(*sl)
    e = rel_err(y_tri, y_ref)
    log(f'  triton vs float64 reference, fp32 forward, 5 channels, L={length}: {e:.1e} ({time.time() - t0:.0f}s)')
    results['checks']['triton_vs_float64_fwd_fp32'] = e
    short = [t[..., :GRAD_REF_LENGTH] if t.dim() == 3 else t for t in sl]
    dy = torch.randn(short[0].shape, device=DEVICE, generator=torch.Generator(DEVICE).manual_seed(4))
    t0 = time.time()
    ours = grads(tri, short, dy)
    ref = grads(reference_selective_scan, [t.double() for t in short], dy.double())
    errs = {n: rel_err(a, b) for n, a, b in zip(NAMES, ours, ref)}
    log(f'  triton vs float64 reference, fp32 gradients, 5 channels, L={GRAD_REF_LENGTH}: ' +
        ' '.join(f'{k} {v:.1e}' for k, v in errs.items()) + f' ({time.time() - t0:.0f}s)')
    results['checks']['triton_vs_float64_grads_fp32'] = errs
    ok = all(v < 1e-3 for v in errs.values()) and e < 1e-4 and all(
        max(results['checks'][f'triton_vs_chunked_{tag}']['rel_err'].values()) < (1e-3 if tag == 'float32' else 5e-2)
        for tag in ('float32', 'bfloat16'))
    results['checks']['all_ok'] = ok
    log(f'  correctness: {"PASS" if ok else "CHECK"}')


def first_call_latency(results: dict) -> None:
    """Seconds of the first forward and the first backward in this process (Triton JIT + cache lookup)."""
    from mmhrsam.ops.selective_scan.triton_scan import triton_selective_scan
    for dtype in (torch.bfloat16, torch.float32):
        tag = str(dtype).replace('torch.', '')
        args = [t.requires_grad_() for t in make_inputs(1, GRAD_REF_LENGTH, dtype, seed=5)]
        sync(torch.device(DEVICE))
        t0 = time.time()
        y = triton_selective_scan(*args)
        sync(torch.device(DEVICE))
        t1 = time.time()
        y.float().sum().backward()
        sync(torch.device(DEVICE))
        t2 = time.time()
        results['first_call_s'][tag] = dict(forward=t1 - t0, backward=t2 - t1)
        log(f'  {tag}: first forward {t1 - t0:.1f} s, first backward {t2 - t1:.1f} s (JIT or disk cache)')


def sweep(results: dict, args_bf16, warmup: int, repeats: int, configs=None, backward=False) -> None:
    """Times the forward (bf16) for each configuration: ``configs`` (dicts of ScanTuning fields) or a default grid."""
    from mmhrsam.ops.selective_scan.triton_scan import ScanTuning
    if configs is not None:
        return sweep_custom(results, args_bf16, warmup, repeats, [ScanTuning(**c) for c in configs], backward)
    grid = [ScanTuning(chunk=c, fwd_warps=w) for c in (128, 256, 512) for w in (2, 4)]
    grid += [ScanTuning(chunk=256, fwd_warps=w, npoly=p) for w in (2, 4) for p in ((4, 0), (4, 2), (8, 2))]
    grid += [ScanTuning(chunk=256, fwd_warps=1)]
    if DEVICE != 'cuda':
        grid = grid[:2]
    for tuning in grid:
        t0 = time.time()
        try:
            ms = time_ms(call(triton_fn(tuning), args_bf16, False), warmup, repeats)
        except Exception as e:  # noqa: BLE001
            log(f'  {tuning}: failed {type(e).__name__}: {e}')
            continue
        results['sweep'].append(dict(dataclasses.asdict(tuning), fwd_bf16_ms=ms))
        log(f'  {tuning}: fwd bf16 {ms:.3f} ms ({time.time() - t0:.0f}s incl. compile)')
    best = min(results['sweep'], key=lambda r: r['fwd_bf16_ms'], default=None)
    if best:
        log(f'  best: {best}')


def sweep_custom(results: dict, args_bf16, warmup: int, repeats: int, tunings, backward: bool) -> None:
    dy = torch.randn(args_bf16[0].shape, device=DEVICE, dtype=args_bf16[0].dtype)
    for tuning in tunings:
        t0 = time.time()
        row = dataclasses.asdict(tuning)
        try:
            row['fwd_bf16_ms'] = time_ms(call(triton_fn(tuning), args_bf16, False), warmup, repeats)
            if backward:
                row['fwd_bwd_bf16_ms'] = time_ms(call(triton_fn(tuning), args_bf16, True, dy), warmup, repeats)
        except Exception as e:  # noqa: BLE001
            row['error'] = f'{type(e).__name__}: {e}'[:300]
        results['sweep'].append(row)
        log(f'  {row} ({time.time() - t0:.0f}s incl. compile)')


def configure(args: argparse.Namespace) -> dict:
    """Apply ``--smoke`` (tiny CPU sizes), check the device, and start the results dict."""
    global CHANNELS, LENGTHS, GRAD_REF_LENGTH, DEVICE
    if args.smoke:
        CHANNELS, LENGTHS, GRAD_REF_LENGTH, DEVICE = 8, (48, 192), 24, 'cpu'
        args.repeats, args.warmup = 1, 0
    else:
        assert torch.cuda.is_available(), 'needs a CUDA device (or --smoke)'
    import triton

    class _Cpu:
        name, multi_processor_count = 'cpu (Triton interpreter)', 4
    dev = torch.cuda.get_device_properties(0) if DEVICE == 'cuda' else _Cpu
    log(f'{dev.name} ({dev.multi_processor_count} SMs), torch {torch.__version__}, triton {triton.__version__}')
    return dict(device=dev.name, sms=dev.multi_processor_count, torch=torch.__version__, triton=triton.__version__,
                batch=args.batch, channels=CHANNELS, d_state=D_STATE, checks={}, first_call_s={}, sweep=[],
                timings=[], targets={}, mamba_reference_ms=MAMBA_REFERENCE, lengths=list(LENGTHS),
                smoke=args.smoke)


def dtype_tag(dtype: torch.dtype) -> str:
    return str(dtype).replace('torch.', '').replace('float32', 'fp32').replace('bfloat16', 'bf16')


def time_one(name: str, run: Callable, args: argparse.Namespace) -> float:
    """Median ms of ``run``; the chunked backend gets one call first and, when that took
    seconds, only that call is reported."""
    if name != 'chunked':
        return time_ms(run, args.warmup, args.repeats)
    ms = time_ms(run, 0, 1)
    return time_ms(run, 0, 3) if ms < 2000 else ms


def timing_row(name: str, what: str, ms: float, inputs, backward: bool, length: int, tag: str) -> dict:
    """A timings row: bandwidth, state-update rate and the exp-throughput floors."""
    updates = inputs[0].shape[0] * CHANNELS * D_STATE * length
    row = dict(backend=name, what=what, ms=ms, length=length, dtype=tag, backward=backward,
               GBps=io_bytes(inputs, backward) / ms / 1e6, Gupdates_per_s=updates / ms / 1e6)
    passes = (5 if backward else 2) if name == 'triton' else 1
    row['exp_floor_ms'] = updates / EXP_RATE * 1e3  # one exp per update, one pass
    row['design_floor_ms'] = passes * row['exp_floor_ms']
    return row


def time_backends(results: dict, args: argparse.Namespace, fns: Dict[str, Callable]) -> None:
    """Forward and forward + backward of every backend at every length and dtype."""
    from mmhrsam.ops.selective_scan.triton_scan import default_config
    for length in LENGTHS:
        for dtype in (torch.float32, torch.bfloat16):
            tag = dtype_tag(dtype)
            inputs = make_inputs(args.batch, length, dtype, seed=7)
            dy = torch.randn(inputs[0].shape, device=DEVICE, dtype=dtype)
            for name, fn in fns.items():
                for backward in (False, True):
                    if name == 'chunked' and (backward and (length > LENGTHS[0] or dtype != torch.float32)):
                        continue  # minutes per call; one fp32 point is enough for the comparison
                    what = f'{"fwd+bwd" if backward else "fwd"} {tag} L={length}'
                    t0 = time.time()
                    try:
                        run = call(fn, inputs, backward, dy)
                        ms = time_one(name, run, args)
                    except Exception as e:  # noqa: BLE001
                        log(f'  {name:9s} {what}: failed {type(e).__name__}: {e}')
                        continue
                    row = timing_row(name, what, ms, inputs, backward, length, tag)
                    if name == 'triton' and not backward:
                        row['graph_ms'] = graph_ms(run, args.repeats)
                        row['config'] = default_config(inputs[0], D_STATE)._asdict()
                    results['timings'].append(row)
                    graph = f' graph {row["graph_ms"]:.3f}' if row.get('graph_ms') else ''
                    log(f'  {name:9s} {what:22s} {ms:9.3f} ms{graph}  {row["GBps"]:7.0f} GB/s  '
                        f'{row["Gupdates_per_s"]:7.0f} G upd/s  (exp floor {row["exp_floor_ms"]:.3f} ms, '
                        f'{time.time() - t0:.0f}s)')
            del inputs, dy
            torch.cuda.empty_cache()


def ms_of(results: dict, what: str, backend: str = 'triton') -> Optional[float]:
    return next((r['ms'] for r in results['timings'] if r['backend'] == backend and r['what'] == what), None)


def check_targets(results: dict) -> None:
    """:data:`TARGETS` against the triton rows (lengths named as at full size, run at this run's)."""
    small, large = LENGTHS
    for key, limit in TARGETS.items():
        key_here = key.replace('49152', str(small)).replace('196608', str(large))
        if key.startswith('scaling'):
            what = key.split(' ', 1)[1].rsplit(' ', 1)[0]
            a, b = ms_of(results, f'{what} L={large}'), ms_of(results, f'{what} L={small}')
            value = None if a is None or b is None else a / b
        else:
            value = ms_of(results, key_here)
        ok = value is not None and value <= limit
        results['targets'][key] = dict(value=value, limit=limit, ok=ok)
        shown = 'n/a' if value is None else f'{value:.3f}'
        log(f'  {"PASS" if ok else "MISS"}  {key:38s} {shown:>8s}  (<= {limit})')


def log_table(results: dict, names: List[str]) -> None:
    """A markdown table: one row per case, one column per backend, plus the triton extras."""
    whats = sorted({r['what'] for r in results['timings']}, key=lambda w: (int(w.rsplit('=', 1)[1]), w))
    log('| case | ' + ' | '.join(names) + ' | triton graph | ref. mamba-ssm | triton G upd/s | exp floor |')
    log('|---|' + '---:|' * (len(names) + 4))
    for what in whats:
        cells = [ms_of(results, what, n) for n in names]
        tri_row = next((r for r in results['timings'] if r['backend'] == 'triton' and r['what'] == what), {})
        log(f'| {what} | ' + ' | '.join('–' if c is None else f'{c:.3f}' for c in cells) +
            f' | {tri_row.get("graph_ms") and round(tri_row["graph_ms"], 3) or "–"}'
            f' | {MAMBA_REFERENCE.get(what, "–")} | {tri_row.get("Gupdates_per_s", 0):.0f}'
            f' | {tri_row.get("exp_floor_ms", 0):.3f} |')


def main():
    args = parse_args()
    results = configure(args)
    t_start = time.time()
    log('== first-call latency')
    first_call_latency(results)
    if not args.no_check:
        log(f'== correctness (full size: B=1, D={CHANNELS}, N={D_STATE}, L={LENGTHS[0]})')
        check_correctness(results)
    torch.cuda.empty_cache()
    if not args.no_sweep:
        log('== forward configuration sweep (bf16, L=49152)')
        sweep(results, make_inputs(args.batch, LENGTHS[0], torch.bfloat16), args.warmup, args.repeats,
              json.loads(args.sweep_json) if args.sweep_json else None, args.sweep_bwd)
    if args.profile:
        log('== per-kernel profile')
        profile_kernels(results, args.batch)
    log('== timings')
    fns = backends(args.backends)
    time_backends(results, args, fns)
    log('== targets')
    check_targets(results)
    log('== table (ms; eager CUDA-event median; "graph" = CUDA-graph replay of the triton forward)')
    log_table(results, list(fns))
    results['wall_s'] = time.time() - t_start
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=1)
    log(f'wrote {args.out} ({results["wall_s"]:.0f} s)')


if __name__ == '__main__':
    main()
