"""Where an encoder's default fast path spends its GPU time: kernel time per forward, by kind.

Runs the encoder as ``HRSAMPredictor`` does on CUDA (:class:`mmhrsam.apis.EncoderRunner`: bf16
autocast, bf16 matmul weights, compiled once per size) but without the CUDA graph, so that the
profiler sees every kernel; profiles ``--forwards`` forwards after the warm-up and sums the device
time of each kernel, then groups the kernels by kind (:data:`KERNEL_KINDS`, first match of the
name wins): GEMMs, fused attention, the Cycle-scan's Triton kernels, and Inductor's generated
kernels split by what they fuse (GELU, RoPE with the window gathers, LayerNorm with residuals,
the rest). Prints the table and the top kernels; ``--out`` writes them as JSON. Also measures
the bf16 matmul rate (8192³) in the same process, the denominator of the GEMMs' efficiency.

Example (one H200; docs/benchmarks.md, "The default fast path")::

    python tools/analysis/profile_encoder_kernels.py --models HRSAM HRSAM++ --size 2048 \\
        --out work_dirs/encoder_kernels.json
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from typing import Dict, Iterable, List, Sequence, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_common import dump_json  # noqa: E402
from count_flops import count_encoder  # noqa: E402
from encoder_benchmark.encoders import ENCODERS, resolve_model_name  # noqa: E402
from training_benchmark.measure import matmul_rate  # noqa: E402

import mmhrsam.models  # noqa: E402,F401  (registers the encoders)
from mmhrsam.apis.encoder_runner import EncoderRunner  # noqa: E402
from mmhrsam.registry import MODELS  # noqa: E402

#: Operators whose FLOPs the GEMM kernels carry (count_flops.py's names).
GEMM_OPERATORS = ('aten.addmm', 'aten.mm', 'aten.bmm', 'aten.convolution')

#: (kind, name fragments): a kernel belongs to the first kind one of whose fragments its
#: lower-cased name contains. Inductor's kernels are named after the operators they fuse.
KERNEL_KINDS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ('Cycle-scan (Triton)', ('_fwd_chunk', '_cycle_carry', '_bwd_chunk', '_carry_pass', '_final_state')),
    ('GELU (fused)', ('gelu', )),
    ('RoPE + window gathers (fused)', ('cos', 'sin')),
    ('LayerNorm + residual (fused)', ('layer_norm', )),
    ('other generated element-wise', ('triton_', )),
    ('GEMM', ('nvjet', 'gemm', 'cutlass', 'xmma', 'cublas')),
    ('attention (SDPA)', ('sdpa', 'fmha', 'flash', 'attention')),
    ('copies and memsets', ('memcpy', 'memset')),
)
OTHER = 'other'


def kernel_kind(name: str) -> str:
    """The :data:`KERNEL_KINDS` kind of a kernel name, or ``'other'``."""
    lower = name.lower()
    for kind, fragments in KERNEL_KINDS:
        if any(f in lower for f in fragments):
            return kind
    return OTHER


def summarize(kernels: Iterable[Tuple[str, float]], forwards: int, top: int = 15) -> Dict:
    """Per-forward milliseconds by kind and the ``top`` kernels.

    Args:
        kernels: (kernel name, device microseconds) of every kernel launch profiled.
        forwards (int): forwards profiled.
        top (int): kernels listed by total time.

    Returns:
        dict: ``total_ms``, ``by_kind_ms`` (kinds in :data:`KERNEL_KINDS` order, then
        ``other``), ``top`` ([name, kind, ms per forward, launches per forward]).
    """
    by_kind, by_name, launches = defaultdict(float), defaultdict(float), defaultdict(int)
    for name, us in kernels:
        by_kind[kernel_kind(name)] += us
        by_name[name] += us
        launches[name] += 1
    order = [kind for kind, _ in KERNEL_KINDS] + [OTHER]
    per_forward = 1e-3 / forwards
    ranked = sorted(by_name, key=by_name.get, reverse=True)[:top]
    return dict(total_ms=sum(by_name.values()) * per_forward,
                by_kind_ms={kind: by_kind[kind] * per_forward for kind in order if kind in by_kind},
                top=[[name, kernel_kind(name), by_name[name] * per_forward, launches[name] / forwards]
                     for name in ranked])


def profile_model(name: str, size: int, forwards: int, device: torch.device) -> Dict:
    """Kernel summary of ``forwards`` fast-path forwards of encoder ``name`` at ``size``²."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    model = MODELS.build(ENCODERS[name].cfg(size)).to(device).eval()
    runner = EncoderRunner(model, device, cuda_graph=False)  # compiled, no graph: kernels visible
    x = torch.randn(1, 3, size, size, device=device)
    for _ in range(3):  # the first call compiles
        runner(x)
    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(forwards):
            runner(x)
        torch.cuda.synchronize(device)
    kernels = [(e.name, e.time_range.elapsed_us()) for e in prof.events() if e.device_type == DeviceType.CUDA]
    counted = count_encoder(ENCODERS[name].cfg(size), size)['by_operator']
    return dict(model=name, size=size, mode=runner.mode, **summarize(kernels, forwards),
                matmul_flops=sum(n for op, n in counted.items() if op in GEMM_OPERATORS))


def format_summary(result: Dict, rate: float) -> str:
    """The kinds, the top kernels and the GEMMs' FLOP rate against the measured matmul rate."""
    lines = [f"{result['model']} {result['size']}² ({result['mode']}): {result['total_ms']:.2f} ms of kernels "
             'per forward']
    for kind, ms in result['by_kind_ms'].items():
        lines.append(f'  {kind:<32} {ms:7.3f} ms')
    lines.append('  top kernels (ms per forward, launches per forward):')
    lines += [f'    {ms:7.3f} {n:5.1f}  [{kind}] {name[:90]}' for name, kind, ms, n in result['top']]
    gemm = result['by_kind_ms'].get('GEMM')
    if gemm:
        achieved = result['matmul_flops'] / (gemm * 1e-3)
        lines.append(f'  GEMMs: {achieved / 1e12:.0f} TFLOP/s, {achieved / rate:.0%} of the measured bf16 '
                     f'matmul rate ({rate / 1e12:.0f} TFLOP/s)')
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', type=resolve_model_name, default=['HRSAM'],
                   help=f'encoders, of {list(ENCODERS)} (default HRSAM)')
    p.add_argument('--size', type=int, default=2048, help='square input side (default 2048)')
    p.add_argument('--forwards', type=int, default=5, help='profiled forwards (default 5)')
    p.add_argument('--out', default=None, help='JSON output (default: none)')
    return p


def main(argv: Sequence[str] = None) -> List[Dict]:
    args = build_parser().parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit('profile_encoder_kernels.py profiles CUDA kernels: it needs a GPU')
    device = torch.device('cuda')
    rate = matmul_rate('cuda', 8192, reps=20)['flops_per_s']  # bf16
    results = []
    for name in args.models:
        result = profile_model(name, args.size, args.forwards, device)
        print(format_summary(result, rate), flush=True)
        results.append(result)
    if args.out:
        dump_json(args.out, dict(matmul_bf16_flops_per_s=rate, device=torch.cuda.get_device_name(device),
                                 torch=torch.__version__, results=results))
    return results


if __name__ == '__main__':
    main()
