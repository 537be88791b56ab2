"""Latency and peak memory of every attention variant x backend.

Token grids 64², 128², 256² (1024², 2048², 4096² images at patch 16), C=768, 12 heads,
window 16 (shift 8 for shifted variants). fp32 on CPU, bf16 on CUDA. Each row times one
attention layer (qkv + attention + proj, what a backbone runs) and, for the targets,
the attention core (the layer minus its two Linear layers, timed separately on the
same tokens). On CUDA every case is timed eagerly and as replays of a captured CUDA
graph (what a deployed encoder runs: no per-kernel launch cost).

Examples::

    python tools/analysis/benchmark_attention.py                      # CPU, fp32, quick
    python tools/analysis/benchmark_attention.py --device cuda --out work_dirs/attn.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Dict, List

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))

from mmhrsam.ops.attention import available_backends  # noqa: E402
from mmhrsam.registry import MODELS  # noqa: E402
from mmhrsam.utils.benchmark import capture_cuda_graph, time_fn  # noqa: E402

EMBED_DIM, HEADS, WINDOW = 768, 12, 16
#: (label, config). 'NonShiftWindow' is the dense bound: the same tokens in non-shift
#: windows of k², a single dense SDPA batch.
VARIANTS = [
    ('Global', dict(type='GlobalAttention')),
    ('PlainSwin', dict(type='PlainSwinAttention', window_size=WINDOW, shift_size=WINDOW // 2)),
    ('FlashSwin', dict(type='FlashSwinAttention', window_size=WINDOW, shift_size=WINDOW // 2)),
    ('NonShiftWindow', dict(type='FlashSwinAttention', window_size=WINDOW, shift_size=0)),
    ('KVPadSwin', dict(type='KVPadSwinAttention', window_size=WINDOW, shift_size=WINDOW // 2)),
    ('Dilated-d4', dict(type='DilatedAttention', dilation=4)),
    ('MultiScaleKVPadSwin+32²', dict(type='MultiScaleKVPadSwinAttention', window_size=WINDOW,
                                      shift_size=WINDOW // 2)),
]
#: Work that takes minutes on a CPU: dense global attention on >= 128² tokens, and the
#: per-group reference loop beyond 64².
CPU_LIMITS = {'Global': 64, 'Dilated-d4': 128}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--grids', type=int, nargs='+', default=None,
                   help='token grid sides (default 64 128 256 on CUDA, 64 128 on CPU)')
    p.add_argument('--variants', nargs='+', default=None, help='subset of variant labels')
    p.add_argument('--backends', nargs='+', default=None, help='subset of backends')
    p.add_argument('--repeats', type=int, default=None, help='timed runs (default 50 CUDA, 3 CPU)')
    p.add_argument('--warmup', type=int, default=None, help='untimed runs (default 10 CUDA, 1 CPU)')
    p.add_argument('--no-graph', action='store_true',
                   help='skip the CUDA-graph timings (replays of a captured layer, no launch overhead)')
    p.add_argument('--out', default='work_dirs/benchmark_attention.json', help='JSON output')
    return p.parse_args()


def peak_memory_mib(fn: Callable, device: torch.device) -> float:
    """Extra device memory (MiB) at the peak of one ``fn()`` call; NaN on CPU."""
    if device.type != 'cuda':
        return float('nan')
    fn()  # caches (index maps, block masks, compiled kernels) are one-time costs
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2 ** 20


def backends_for(label: str, device: torch.device, wanted) -> List[str]:
    names = available_backends(device)
    if device.type == 'cpu':  # eager CPU FlexAttention materializes all scores: a test path only
        names = [n for n in names if n != 'flex']
    if label == 'PlainSwin':  # the masked dense baseline has no block-sparse form
        names = [n for n in names if n in ('sdpa', 'reference')]
    if wanted:
        names = [n for n in names if n in wanted]
    return names


def make_inputs(label: str, side: int, device, dtype):
    """(tokens (1, L, C), grids): one side x side grid, plus HRSAM++'s 32 x 32 anchor grid for 'MultiScale' labels."""
    grids = ((side, side), (32, 32)) if 'MultiScale' in label else ((side, side), )
    tokens = torch.randn(1, sum(h * w for h, w in grids), EMBED_DIM, device=device, dtype=dtype)
    return tokens, grids


def linear_only(layer, inputs) -> Callable:
    """The layer's qkv and proj GEMMs on the same number of tokens (no attention)."""
    tokens = inputs[0][0]
    return lambda: layer.proj(layer.qkv(tokens)[:, :EMBED_DIM])


def run_case(label, cfg, side, backend, args, device, dtype, graphed) -> Dict:
    layer = MODELS.build(dict(cfg, embed_dim=EMBED_DIM, num_heads=HEADS, backend=backend)).to(device, dtype).eval()
    inputs = make_inputs(label, side, device, dtype)
    with torch.no_grad():
        call, linear = (lambda: layer(*inputs)), linear_only(layer, inputs)
        mem = peak_memory_mib(call, device)
        if graphed:
            call, linear = (capture_cuda_graph(f, device, side_warmup=3)[1] for f in (call, linear))
        ms = time_fn(call, device, args.warmup, args.repeats)['ms']
        ms_linear = time_fn(linear, device, args.warmup, args.repeats)['ms']
    return dict(variant=label, type=cfg['type'], tokens=f'{side}x{side}', image=f'{side * 16}x{side * 16}',
                backend=backend, mode='graph' if graphed else 'eager', device=str(device), dtype=str(dtype).replace('torch.', ''),
                layer_ms=round(ms, 4), linear_ms=round(ms_linear, 4), core_ms=round(ms - ms_linear, 4),
                peak_mem_mib=round(mem, 1))


def plan(args, device):
    cases = []
    for side in args.grids:
        for label, cfg in VARIANTS:
            if args.variants and label not in args.variants:
                continue
            if device.type == 'cpu' and side > CPU_LIMITS.get(label, 10 ** 9):
                continue
            for backend in backends_for(label, device, args.backends):
                if backend == 'reference' and (side > 64 or label == 'Global'):
                    continue  # the reference loop is a test path
                cases.append((label, cfg, side, backend, False))
                if device.type == 'cuda' and not args.no_graph and backend != 'reference':
                    cases.append((label, cfg, side, backend, True))
    return cases


def print_table(rows: List[Dict]) -> None:
    head = f"{'tokens':>9} {'variant':<24} {'backend':<9} {'mode':<8} {'layer ms':>9} {'core ms':>8} {'peak MiB':>9}"
    print(head)
    print('-' * len(head))
    for r in rows:
        mode = r['mode']
        print(f"{r['tokens']:>9} {r['variant']:<24} {r['backend']:<9} {mode:<8} {r['layer_ms']:>9.3f} "
              f"{r['core_ms']:>8.3f} {r['peak_mem_mib']:>9.1f}")


def targets(rows: List[Dict]) -> List[str]:
    """Issue targets at 128² tokens on CUDA: Flash <= 0.8 Plain, <= 1.25 dense bound, KVPad <= 1.3 bound."""
    out = []
    rows = [r for r in rows if r['device'].startswith('cuda')]  # the targets are GPU targets
    for mode in ('eager', 'graph'):
        sel = {(r['variant'], r['backend']): r for r in rows
               if r['tokens'] == '128x128' and r['mode'] == mode}
        best = {}
        for (variant, _), r in sel.items():
            if variant not in best or r['core_ms'] < best[variant]['core_ms']:
                best[variant] = r
        if not {'FlashSwin', 'PlainSwin', 'NonShiftWindow', 'KVPadSwin'} <= best.keys():
            continue
        for key in ('core_ms', 'layer_ms'):
            f, p, d, kv = (best[v][key] for v in ('FlashSwin', 'PlainSwin', 'NonShiftWindow', 'KVPadSwin'))
            out.append(f'[{mode}, {key}] FlashSwin/PlainSwin = {f / p:.2f} (target <= 0.80), '
                       f'FlashSwin/dense bound = {f / d:.2f} (<= 1.25), KVPadSwin/dense bound = {kv / d:.2f} (<= 1.30)')
    return out


def main():
    args = parse_args()
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    dtype = torch.bfloat16 if cuda else torch.float32
    args.grids = args.grids or ([64, 128, 256] if cuda else [64, 128])
    args.repeats = args.repeats or (50 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    torch.manual_seed(0)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    env = dict(torch=torch.__version__, device_name=torch.cuda.get_device_name(device) if cuda else 'cpu',
               threads=torch.get_num_threads(), command=' '.join(sys.argv))
    rows = []
    for case in tqdm(plan(args, device), desc='attention benchmark', unit='case'):
        rows.append(run_case(*case[:4], args, device, dtype, case[4]))
        with open(args.out, 'w') as f:  # after every case, so an interrupted run keeps its rows
            json.dump(dict(env=env, results=rows, targets=targets(rows)), f, indent=1)
    print_table(rows)
    for line in targets(rows):
        print(line)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
