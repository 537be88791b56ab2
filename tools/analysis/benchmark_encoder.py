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
import contextlib
import gc
import json
import math
import os
import re
import sys
import time
from collections import defaultdict
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))

import mmhrsam.models  # noqa: E402,F401  (registers the encoders)
from mmhrsam.ops.attention import ATTENTION_BACKENDS  # noqa: E402
from mmhrsam.registry import MODELS  # noqa: E402
from mmhrsam.utils.benchmark import capture_cuda_graph, sync, time_fn  # noqa: E402

MIB, GIB = 2 ** 20, 2 ** 30
PATCH = 16


class Encoder(NamedTuple):
    """An encoder to benchmark.

    Attributes:
        cfg: input size -> model config.
        paper: the row of the paper it stands for.
        dense: '' (local attention only), 'flash' (dense attention through SDPA, memory
            linear in tokens) or 'materialized' (explicit N x N scores).
        heads: attention heads of the dense layers (for the score-memory estimate).
        per_size: built anew for every input size (SAM: fixed-size position embedding).
        host_factories: its forward creates tensors without a device (segment_anything's
            relative-position indices, ``torch.arange`` on the CPU) and indexes GPU tables
            with them: a host-to-device copy, which a CUDA graph cannot capture. Graph mode
            runs its forward with the GPU as the default device (:func:`on_default_device`).
    """
    cfg: Callable[[int], dict]
    paper: str
    dense: str = ''
    heads: int = 12
    per_size: bool = False
    host_factories: bool = False


def _hrsam(attn: Optional[str] = None, scan: bool = True, plus: bool = False) -> Callable[[int], dict]:
    cfg = dict(type='HRSAMPlusPlus' if plus else 'HRSAM')
    if attn is not None:
        cfg['attn_cfg'] = dict(type=attn)
    if not scan:
        cfg['cycle_scan_cfg'] = None
    return lambda size: dict(cfg)


#: Table 3 order, then the Fig. 5 baseline and SAM's encoders.
ENCODERS: Dict[str, Encoder] = {
    'Global': Encoder(_hrsam('GlobalAttention', scan=False), 'Table 3: Global', dense='flash'),
    'FlashSwin': Encoder(_hrsam('FlashSwinAttention', scan=False), 'Table 3: Flash Swin'),
    'KVPadSwin': Encoder(_hrsam('KVPadSwinAttention', scan=False), 'Table 3: + KV padding'),
    'HRSAM': Encoder(_hrsam(), 'Table 3: + Cycle-scan (HRSAM)'),
    'HRSAM++': Encoder(_hrsam(plus=True), 'Table 3: + multi-scale (HRSAM++)'),
    'PlainSwin': Encoder(_hrsam('PlainSwinAttention', scan=False), 'Fig. 5: Plain Swin'),
    'SAM-ViT-B': Encoder(lambda s: dict(type='SAMViT', arch='vit-b', img_size=s), 'SAM ViT-B',
                         dense='materialized', heads=12, per_size=True, host_factories=True),
    'SAM-ViT-H': Encoder(lambda s: dict(type='SAMViT', arch='vit-h', img_size=s), 'SAM ViT-H',
                         dense='materialized', heads=16, per_size=True, host_factories=True),
    # Dilated groups hold tokens / rate² tokens each and run through SDPA; SAM's windows are local
    # (segment_anything's blocks, hence its relative-position indices).
    'SAM-Lightening': Encoder(lambda s: dict(type='SAMLightening', arch='vit-s'), 'SAM-Lightening ViT-S',
                              host_factories=True),
}
ALIASES = {'hrsamplusplus': 'HRSAM++', 'hrsampp': 'HRSAM++', 'kvpad': 'KVPadSwin', 'flash': 'FlashSwin',
           'plain': 'PlainSwin', 'sam-b': 'SAM-ViT-B', 'sam-h': 'SAM-ViT-H', 'samvit-b': 'SAM-ViT-B',
           'samvit-h': 'SAM-ViT-H', 'sam_vit_b': 'SAM-ViT-B', 'sam_vit_h': 'SAM-ViT-H',
           'samlightening': 'SAM-Lightening', 'sam-light': 'SAM-Lightening', 'lightening': 'SAM-Lightening'}
CPU_MODELS = ('HRSAM', 'SAM-ViT-B')
#: Default run order on CUDA: the rows the target checks need first, so that a run cut short
#: by --time-limit-s still checks them (tables list models in :data:`ENCODERS` order).
CUDA_MODELS = ('HRSAM', 'HRSAM++', 'FlashSwin', 'SAM-ViT-H', 'SAM-Lightening', 'KVPadSwin', 'Global', 'PlainSwin',
               'SAM-ViT-B')
MODES = ('eager', 'graph', 'compile')
#: Bytes per element of SAM's materialized attention scores: the scores, the copy with the
#: relative-position bias added, the softmax (fp32 under autocast).
SCORE_BYTES = {'autocast-bf16': 8, 'bf16': 6, 'fp32': 12}
BREAKDOWN_PARTS = ('attention', 'mlp', 'cycle_scan', 'embed', 'fusion')
#: The parts must cover the hooked forward's total within this fraction.
COVERAGE_TOLERANCE = 0.10


def resolve_model_name(name: str) -> str:
    for label in ENCODERS:
        if label.lower() == name.lower():
            return label
    if name.lower() in ALIASES:
        return ALIASES[name.lower()]
    raise argparse.ArgumentTypeError(f'unknown encoder {name!r}; choose from {list(ENCODERS)}')


def tiny_cfg(cfg: dict) -> dict:
    """A few-channel, few-block version of ``cfg`` (same code paths), for tests."""
    cfg = dict(cfg)
    if cfg['type'] == 'SAMViT':
        cfg['arch'] = dict(embed_dim=64, depth=4, num_heads=2, global_attn_indexes=(1, 3))
        return cfg
    if cfg['type'] == 'SAMLightening':
        cfg['arch'] = dict(embed_dim=64, depth=4, num_heads=2, attn_pattern=('window', 2, 'window', 2))
        return cfg
    cfg.update(embed_dim=64, depth=4, num_heads=2, num_stages=2, window_size=4, out_channels=32)
    if cfg.get('cycle_scan_cfg', 'default') is not None:
        cfg['cycle_scan_cfg'] = dict(type='CycleScan', d_state=4)
    if cfg['type'] == 'HRSAMPlusPlus':
        cfg.update(anchor_size=64, ms_cycle_scan_cfg=dict(type='MultiScaleCycleScan', d_state=4))
    return cfg


# ---------------------------------------------------------------------------- arguments
def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument('--cuda-graph', action='store_true', help='also time replays of the captured forward')
    p.add_argument('--compile', action='store_true', help='also time torch.compile(model) (compiled per size)')
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


# ---------------------------------------------------------------------------- planning
class Case(NamedTuple):
    model: str
    size: int
    mode: str  # eager | graph | compile | breakdown
    skip: str = ''  # reason, '' when the case runs


def num_tokens(size: int) -> int:
    return math.ceil(size / PATCH) ** 2


def size_skip_reason(name: str, size: int, args) -> str:
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


def mode_skip_reason(mode: str, device: torch.device) -> str:
    if mode == 'graph' and device.type != 'cuda':
        return 'CUDA graphs need a CUDA device'
    return ''


def plan(args, device: torch.device) -> List[Case]:
    """Every (model, size, mode) case in run order; each breakdown follows its model's
    cases at that size, so the model is built once."""
    modes = ['eager'] + (['graph'] if args.cuda_graph else []) + (['compile'] if args.compile else [])
    cases = []
    for name in args.models:
        for size in args.sizes:
            skip = size_skip_reason(name, size, args)
            cases += [Case(name, size, mode, skip or mode_skip_reason(mode, device)) for mode in modes]
    if args.breakdown:
        for name in args.breakdown_models:
            case = Case(name, args.breakdown_size, 'breakdown', size_skip_reason(name, args.breakdown_size, args))
            same = [i for i, c in enumerate(cases) if c.model == name and c.size == args.breakdown_size]
            cases.insert(same[-1] + 1 if same else len(cases), case)
    return cases


# ---------------------------------------------------------------------------- timing
def make_forward(model: torch.nn.Module, x: torch.Tensor, precision: str, device: torch.device,
                 autocast_cache: bool = True) -> Callable:
    """``fn()`` running one encoder forward on ``x`` (without grad, under autocast if asked)."""

    def fn():
        ctx = (torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=autocast_cache)
               if precision == 'autocast-bf16' else contextlib.nullcontext())
        with torch.no_grad(), ctx:
            return model(x)

    return fn


def on_default_device(fn: Callable, device: torch.device) -> Callable:
    """``fn`` run with ``device`` as the default device of factory calls without ``device=``
    (``torch.device`` as a context manager), so tensors a forward makes that way are created
    where they are used instead of being copied there from the host."""

    def wrapped():
        with torch.device(device):
            return fn()

    return wrapped


def allocated(device: torch.device) -> int:
    if device.type != 'cuda':
        return 0
    sync(device)
    return torch.cuda.memory_allocated(device)


def activation_peak_mib(fn: Callable, device: torch.device) -> Optional[float]:
    """max_memory_allocated during one ``fn()`` minus what was allocated before (MiB); None on CPU."""
    if device.type != 'cuda':
        return None
    base = allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return (torch.cuda.max_memory_allocated(device) - base) / MIB


def tensor_mib(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / MIB


# ---------------------------------------------------------------------------- breakdown
class PartRecorder:
    """Intervals per part: CUDA events (no synchronization while recording) or wall clock."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == 'cuda'
        self.intervals: Dict[str, list] = defaultdict(list)

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def elapsed_ms(self, start, end) -> float:
        return start.elapsed_time(end) if self.cuda else (end - start) * 1e3

    def add(self, part: str, start, end) -> None:
        self.intervals[part].append((start, end))

    def collect(self) -> Dict[str, float]:
        """Milliseconds per part since the last collect (one synchronize)."""
        sync(self.device)
        sums = {part: sum(self.elapsed_ms(s, e) for s, e in spans) for part, spans in self.intervals.items()}
        self.intervals.clear()
        return sums


def part_targets(model: torch.nn.Module) -> List[Tuple[str, torch.nn.Module, Optional[str]]]:
    """(part, module, method) to time: ``method`` is wrapped on the instance when the
    backbone calls it directly (``embed_inputs``, HRSAM++'s ``fuse_scales``), else (None)
    the module gets forward pre/post hooks (attention and Cycle-scan modules are called as modules). No target nests
    inside another, so the parts never double-count."""
    targets = []
    for name, module in model.named_modules():
        if re.fullmatch(r'blocks\.\d+\.attn', name):
            targets.append(('attention', module, None))
        elif re.fullmatch(r'blocks\.\d+\.(mlp|norm1|norm2)', name):
            targets.append(('mlp', module, None))
        elif re.fullmatch(r'(mamba_blocks|ss_mamba_blocks|ms_mamba_blocks)\.\d+', name):
            targets.append(('cycle_scan', module, None))
        elif re.fullmatch(r'lateral_convs\.\d+|out_conv|neck', name):
            targets.append(('fusion', module, None))
        elif name == 'patch_embed' and not hasattr(model, 'embed_inputs'):
            targets.append(('embed', module, None))  # SAM: PatchEmbed is called as a module
    if hasattr(model, 'embed_inputs'):  # HRSAM: patch embedding, pos-embed (and HRSAM++'s anchor map)
        targets.append(('embed', model, 'embed_inputs'))
    if hasattr(model, 'fuse_scales'):  # HRSAM++: split, anchor upsampling, shared LN, concat
        targets.append(('fusion', model, 'fuse_scales'))
    return targets


def instrument(model: torch.nn.Module, recorder: PartRecorder) -> Callable[[], None]:
    """Start recording part intervals; returns the function that removes the instrumentation."""
    undo = []
    for part, module, method in part_targets(model):
        if method is not None:
            original = getattr(module, method)
            shadowed = method in module.__dict__

            def wrapped(*args, _part=part, _fn=original, **kwargs):
                start = recorder.mark()
                out = _fn(*args, **kwargs)
                recorder.add(_part, start, recorder.mark())
                return out

            object.__setattr__(module, method, wrapped)
            undo.append((lambda m=module, n=method, o=original, s=shadowed:
                         object.__setattr__(m, n, o) if s else object.__delattr__(m, n)))
        else:
            stack = []
            pre = module.register_forward_pre_hook(lambda mod, inp, _s=stack: _s.append(recorder.mark()))
            post = module.register_forward_hook(
                lambda mod, inp, out, _s=stack, _part=part: recorder.add(_part, _s.pop(), recorder.mark()))
            undo += [pre.remove, post.remove]

    def remove():
        for fn in reversed(undo):
            fn()

    return remove


def measure_breakdown(model: torch.nn.Module, fn: Callable, device: torch.device, warmup: int, repeats: int,
                      budget_s: Optional[float] = None, min_repeats: int = 1) -> Dict:
    """Per-part milliseconds of ``fn()`` (one forward of ``model``) in the pass of median total."""
    recorder = PartRecorder(device)
    remove = instrument(model, recorder)
    try:
        t0 = time.perf_counter()
        for _ in range(warmup):
            fn()
            recorder.collect()
            if budget_s is not None and time.perf_counter() - t0 > budget_s:
                break
        passes: List[Tuple[float, Dict[str, float]]] = []
        while len(passes) < repeats:
            start = recorder.mark()
            fn()
            end = recorder.mark()
            sums = recorder.collect()  # synchronizes, so ``end`` has completed
            passes.append((recorder.elapsed_ms(start, end), {p: sums.get(p, 0.0) for p in BREAKDOWN_PARTS}))
            if budget_s is not None and len(passes) >= min_repeats and sum(t for t, _ in passes) > budget_s * 1e3:
                break
    finally:
        remove()
    # The pass of median total (the lower one for an even count): its parts and total belong together.
    total, parts = sorted(passes, key=lambda p: p[0])[(len(passes) - 1) // 2]
    return summarize_breakdown(total, parts, len(passes))


def summarize_breakdown(total_ms: float, parts: Dict[str, float], repeats: int = 1) -> Dict:
    """Shares, rest (= embed + fusion), what no part covers, and the coverage check."""
    measured = sum(parts.values())
    coverage = measured / total_ms if total_ms > 0 else float('nan')
    return dict(
        total_ms=round(total_ms, 4),
        parts_ms={p: round(v, 4) for p, v in parts.items()},
        shares={p: round(v / total_ms, 4) for p, v in parts.items()},
        rest_ms=round(parts.get('embed', 0.0) + parts.get('fusion', 0.0), 4),
        measured_ms=round(measured, 4),
        unaccounted_ms=round(total_ms - measured, 4),
        coverage=round(coverage, 4),
        coverage_ok=bool(abs(1 - coverage) <= COVERAGE_TOLERANCE),
        breakdown_repeats=repeats)


# ---------------------------------------------------------------------------- running
def error_text(exc: BaseException, limit: int = 300) -> str:
    text = f'{type(exc).__name__}: {exc}'.replace('\n', ' ')
    return text[:limit] + ('...' if len(text) > limit else '')


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


class Runner:
    """Runs cases, keeping the last built model (encoders are size-independent, except SAM's)."""

    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        self.dtype = torch.bfloat16 if args.precision == 'bf16' else torch.float32
        self._key, self._model, self._build_s = None, None, 0.0
        self.failed: Dict[Tuple[str, int], str] = {}

    def config(self, name: str, size: int) -> dict:
        cfg = ENCODERS[name].cfg(size)
        return tiny_cfg(cfg) if self.args.tiny else cfg

    def model(self, name: str, size: int) -> Tuple[torch.nn.Module, float]:
        key = (name, size if ENCODERS[name].per_size else None)
        if key != self._key:
            self._key, self._model = None, None
            free_memory(self.device)
            t0 = time.perf_counter()
            cfg = self.config(name, size)
            try:  # initialize on the device directly (much faster for ViT-H)
                with torch.device(self.device):
                    model = MODELS.build(cfg)
            except Exception:  # noqa: BLE001  (some init code may not support a device context)
                model = MODELS.build(cfg)
            self._model = model.to(self.device, self.dtype).eval()
            sync(self.device)
            self._key, self._build_s = key, time.perf_counter() - t0
        return self._model, self._build_s

    def release(self) -> None:
        self._key, self._model = None, None
        free_memory(self.device)

    def make_input(self, size: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.args.seed + size)
        return torch.randn(1, 3, size, size, generator=gen).to(self.device, self.dtype)

    def base_row(self, case: Case) -> Dict:
        enc = ENCODERS[case.model]
        return dict(model=case.model, paper=enc.paper, type=self.config(case.model, case.size)['type'],
                    size=case.size, image=f'{case.size}x{case.size}', tokens=num_tokens(case.size), mode=case.mode,
                    device=self.device.type, precision=self.args.precision, status='ok', reason='', ms=None,
                    ms_min=None, repeats=0, params_m=None, weights_mib=None, input_mib=None, cache_mib=None,
                    act_peak_mib=None, peak_mib=None, build_s=None, compile_s=None)

    def run(self, case: Case) -> Dict:
        row = self.base_row(case)
        key = (case.model, case.size)
        if case.skip:
            row.update(status='skipped', reason=case.skip)
            return row
        if case.mode != 'eager' and key in self.failed:
            row.update(status='skipped', reason=f'eager run failed: {self.failed[key]}')
            return row
        try:
            model, build_s = self.model(case.model, case.size)
            params = list(model.parameters())
            row.update(build_s=round(build_s, 2), params_m=round(sum(p.numel() for p in params) / 1e6, 3),
                       weights_mib=round(tensor_mib(params + list(model.buffers())), 1))
            x = self.make_input(case.size)
            row['input_mib'] = round(tensor_mib([x]), 1)
            getattr(self, f'_run_{case.mode}')(row, model, x)
        except Exception as exc:  # noqa: BLE001  (OOM, capture or compile errors: record, go on)
            row.update(status='error', reason=error_text(exc))
            if case.mode == 'eager':
                self.failed[key] = row['reason']
            if self.device.type == 'cuda':
                with contextlib.suppress(Exception):
                    torch.cuda.synchronize(self.device)
        finally:
            free_memory(self.device)
        return row

    def _time(self, row: Dict, fn: Callable) -> None:
        a = self.args
        stats = time_fn(fn, self.device, a.warmup, a.repeats, a.case_budget_s, a.min_repeats)
        row.update(ms=round(stats['ms'], 4), ms_min=round(stats['ms_min'], 4), repeats=stats['repeats'])

    def _memory(self, row: Dict, fn: Callable, before_warmup: int) -> None:
        if self.device.type != 'cuda':
            return
        cache = max(0.0, (allocated(self.device) - before_warmup) / MIB)
        act = activation_peak_mib(fn, self.device)
        row.update(cache_mib=round(cache, 1), act_peak_mib=round(act, 1),
                   peak_mib=round(row['weights_mib'] + row['input_mib'] + cache + act, 1))

    def _run_eager(self, row: Dict, model, x) -> None:
        fn = make_forward(model, x, self.args.precision, self.device)
        before = allocated(self.device)
        self._time(row, fn)
        self._memory(row, fn, before)

    def _run_graph(self, row: Dict, model, x) -> None:
        # The weight casts must be captured in the graph, not served from the autocast cache.
        fn = make_forward(model, x, self.args.precision, self.device, autocast_cache=False)
        if ENCODERS[row['model']].host_factories:
            fn = on_default_device(fn, self.device)
        try:  # the side-stream warm-up builds index maps and other caches outside the capture
            graph, replay = capture_cuda_graph(fn, self.device)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f'CUDA graph capture failed: {error_text(exc)}') from exc
        try:
            self._time(row, replay)
        finally:
            del graph, replay

    def _run_compile(self, row: Dict, model, x) -> None:
        torch._dynamo.reset()  # compile afresh for this size
        compiled = torch.compile(model, dynamic=False)
        fn = make_forward(compiled, x, self.args.precision, self.device)
        before = allocated(self.device)
        t0 = time.perf_counter()
        fn()
        sync(self.device)
        row['compile_s'] = round(time.perf_counter() - t0, 2)
        self._time(row, fn)
        self._memory(row, fn, before)
        del compiled
        torch._dynamo.reset()

    def _run_breakdown(self, row: Dict, model, x) -> None:
        a = self.args
        fn = make_forward(model, x, a.precision, self.device)
        self._time(row, fn)  # the same forward without hooks (warm-up included)
        row['unhooked_ms'] = row['ms']
        row.update(measure_breakdown(model, fn, self.device, warmup=1, repeats=a.repeats, budget_s=a.case_budget_s,
                                     min_repeats=a.min_repeats))
        row.update(ms=row['total_ms'], ms_min=None, repeats=row['breakdown_repeats'])


# ---------------------------------------------------------------------------- targets
def _find(rows: Sequence[Dict], model: str, size: int, mode: str, device: str) -> Optional[Dict]:
    for r in rows:
        if (r['model'], r['size'], r['mode'], r['device'], r['status']) == (model, size, mode, device, 'ok'):
            return r
    return None


def _check(ident: str, what: str, mode: str, value: Optional[float], limit: float, detail: str,
           strict: bool = False) -> Dict:
    ok = value < limit if strict else value <= limit
    return dict(id=ident, target=what, mode=mode, value=round(value, 4), limit=limit,
                status='PASS' if ok else 'MISS', detail=detail)


def target_checks(rows: Sequence[Dict]) -> List[Dict]:
    """The issue's targets, for every mode where the rows they need exist:

    1. FlashSwin (Flash Swin only) at 2048² <= 0.2 x SAM ViT-H at 1024² (CUDA);
    2. HRSAM++ at 2048² <= 1.35 x HRSAM at 2048² (CUDA);
    3. HRSAM time(4096²) / time(2048²) <= 4.5 (CUDA);
    4. HRSAM peak memory at 4096² <= 4 GiB, weights included (CUDA, eager / compile rows);
    5. HRSAM at 1024² under 20 s on CPU (eager).
    """
    checks = []
    for mode in MODES:
        a, b = _find(rows, 'FlashSwin', 2048, mode, 'cuda'), _find(rows, 'SAM-ViT-H', 1024, mode, 'cuda')
        if a and b:
            checks.append(_check('1', 'FlashSwin 2048² <= 0.2 x SAM-ViT-H 1024²', mode, a['ms'] / b['ms'], 0.2,
                                 f"{a['ms']:.2f} ms / {b['ms']:.2f} ms = {a['ms'] / b['ms']:.3f} (<= 0.2)"))
        a, b = _find(rows, 'HRSAM++', 2048, mode, 'cuda'), _find(rows, 'HRSAM', 2048, mode, 'cuda')
        if a and b:
            checks.append(_check('2', 'HRSAM++ 2048² <= 1.35 x HRSAM 2048²', mode, a['ms'] / b['ms'], 1.35,
                                 f"{a['ms']:.2f} ms / {b['ms']:.2f} ms = {a['ms'] / b['ms']:.3f} (<= 1.35)"))
        a, b = _find(rows, 'HRSAM', 4096, mode, 'cuda'), _find(rows, 'HRSAM', 2048, mode, 'cuda')
        if a and b:
            checks.append(_check('3', 'HRSAM time(4096²) / time(2048²) <= 4.5', mode, a['ms'] / b['ms'], 4.5,
                                 f"{a['ms']:.2f} ms / {b['ms']:.2f} ms = {a['ms'] / b['ms']:.3f} (<= 4.5)"))
        a = _find(rows, 'HRSAM', 4096, mode, 'cuda')
        if a and a.get('peak_mib') is not None:
            checks.append(_check('4', 'HRSAM peak memory at 4096² <= 4 GiB (weights included)', mode,
                                 a['peak_mib'] / 1024, 4.0,
                                 f"{a['peak_mib'] / 1024:.3f} GiB = weights {a['weights_mib']:.0f} + input "
                                 f"{a['input_mib']:.0f} + caches {a['cache_mib']:.0f} + activation peak "
                                 f"{a['act_peak_mib']:.0f} MiB (<= 4 GiB)"))
    a = _find(rows, 'HRSAM', 1024, 'eager', 'cpu')
    if a:
        checks.append(_check('5', 'CPU: HRSAM 1024² under 20 s', 'eager', a['ms'] / 1e3, 20.0,
                             f"{a['ms'] / 1e3:.2f} s (< 20 s)", strict=True))
    return checks


#: SAM-Lightening's published figures (its abstract): ms per 1024² image, speed-up over SAM
#: ViT-H, memory in MB (10^6 bytes) and as a fraction of SAM's.
LIGHTENING_PAPER = dict(ms=7.0, speedup=30.1, memory_mb=244.0, memory_share=0.035)


def lightening_claims(rows: Sequence[Dict]) -> List[Dict]:
    """SAM-Lightening's published figures against this run's 1024² CUDA rows, per mode:

    L1. its latency <= 7 ms (absolute: depends on the GPU, the paper's is not stated here);
    L2. SAM ViT-H's latency / its latency >= 30.1;
    L3. its memory <= 244 MB: weights, activation peak and total are all listed, since what
        the paper counted is unknown; the check uses the total (eager / compile rows);
    L4. its total memory / SAM ViT-H's <= 3.5 %.
    """
    paper, checks = LIGHTENING_PAPER, []
    for mode in MODES:
        a, h = _find(rows, 'SAM-Lightening', 1024, mode, 'cuda'), _find(rows, 'SAM-ViT-H', 1024, mode, 'cuda')
        if a:
            checks.append(_check('L1', f"SAM-Lightening 1024² <= {paper['ms']:g} ms", mode, a['ms'], paper['ms'],
                                 f"{a['ms']:.2f} ms (paper {paper['ms']:g} ms, on its GPU)"))
        if a and h:
            speedup = h['ms'] / a['ms']
            checks.append(_check('L2', f"SAM-ViT-H / SAM-Lightening at 1024² >= {paper['speedup']:g}x", mode,
                                 1 / speedup, 1 / paper['speedup'],
                                 f"{h['ms']:.2f} ms / {a['ms']:.2f} ms = {speedup:.1f}x (paper {paper['speedup']:g}x)"))
        if a and a.get('peak_mib') is not None:
            mb = lambda mib: mib * MIB / 1e6  # noqa: E731
            checks.append(_check('L3', f"SAM-Lightening memory at 1024² <= {paper['memory_mb']:g} MB", mode,
                                 mb(a['peak_mib']), paper['memory_mb'],
                                 f"weights {mb(a['weights_mib']):.0f} MB, activation peak {mb(a['act_peak_mib']):.0f} "
                                 f"MB, total {mb(a['peak_mib']):.0f} MB (paper {paper['memory_mb']:g} MB, "
                                 'counting unknown)'))
        if a and h and a.get('peak_mib') is not None and h.get('peak_mib') is not None:
            share = a['peak_mib'] / h['peak_mib']
            checks.append(_check('L4', f"SAM-Lightening / SAM-ViT-H memory <= {100 * paper['memory_share']:g} %",
                                 mode, share, paper['memory_share'],
                                 f"total {a['peak_mib']:.0f} / {h['peak_mib']:.0f} MiB = {100 * share:.1f} % "
                                 f"(weights {a['weights_mib']:.0f} / {h['weights_mib']:.0f} MiB)"))
    return checks


# ---------------------------------------------------------------------------- output
def _fmt(value, spec: str, width: int) -> str:
    return f'{"-":>{width}}' if value is None else f'{value:>{width}{spec}}'


def format_table(rows: Sequence[Dict]) -> str:
    head = (f"{'model':<14} {'image':>9} {'mode':<9} {'status':<7} {'ms':>10} {'min ms':>10} {'n':>3} "
            f"{'wts MiB':>8} {'act MiB':>9} {'peak MiB':>9}  note")
    lines = [head, '-' * len(head)]
    for r in rows:
        note = r['reason'] or (f"compile {r['compile_s']:.0f} s" if r.get('compile_s') else '')
        if r['mode'] == 'breakdown' and r['status'] == 'ok':
            note = f"hooked total; unhooked {r['unhooked_ms']:.3f} ms"
        lines.append(f"{r['model']:<14} {r['image']:>9} {r['mode']:<9} {r['status']:<7} {_fmt(r['ms'], '.3f', 10)} "
                     f"{_fmt(r['ms_min'], '.3f', 10)} {r['repeats']:>3} {_fmt(r['weights_mib'], '.0f', 8)} "
                     f"{_fmt(r['act_peak_mib'], '.0f', 9)} "
                     f"{_fmt(r['peak_mib'], '.0f', 9)}  {note}")
    return '\n'.join(lines)


def format_pivot(rows: Sequence[Dict]) -> str:
    """ms per model (rows, with the paper's row) x size (columns), one block per mode."""
    out = []
    for mode in MODES:
        sel = [r for r in rows if r['mode'] == mode]
        if not sel:
            continue
        sizes = sorted({r['size'] for r in sel})
        models = [m for m in ENCODERS if any(r['model'] == m for r in sel)]
        head = f"{mode + ' ms':<14} {'paper':<34}" + ''.join(f'{s:>10}²' for s in sizes)
        out += [head, '-' * len(head)]
        for m in models:
            cells = []
            for s in sizes:
                r = next((r for r in sel if r['model'] == m and r['size'] == s), None)
                cells.append('' if r is None else f"{r['ms']:.2f}" if r['status'] == 'ok' else
                             'skip' if r['status'] == 'skipped' else 'error')
            out.append(f'{m:<14} {ENCODERS[m].paper:<34}' + ''.join(f'{c:>11}' for c in cells))
        out.append('')
    return '\n'.join(out).rstrip()


def format_breakdown(rows: Sequence[Dict]) -> str:
    out = []
    for r in rows:
        if r['mode'] != 'breakdown' or r['status'] != 'ok':
            continue
        out.append(f"breakdown {r['model']} {r['image']} ({r['device']}, {r['precision']}, eager, hooked total "
                   f"{r['total_ms']:.3f} ms, unhooked {r['unhooked_ms']:.3f} ms)")
        for part in BREAKDOWN_PARTS:
            ms, share = r['parts_ms'].get(part, 0.0), r['shares'].get(part, 0.0)
            out.append(f'  {part:<12} {ms:>10.3f} ms {100 * share:>6.1f} %')
        out.append(f"  {'rest':<12} {r['rest_ms']:>10.3f} ms {100 * r['rest_ms'] / r['total_ms']:>6.1f} % "
                   '(= embed + fusion: patch embed, pos-embed, fusion, out conv)')
        out.append(f"  {'unaccounted':<12} {r['unaccounted_ms']:>10.3f} ms; parts cover {100 * r['coverage']:.1f} % of "
                   f"the total: {'OK' if r['coverage_ok'] else 'NOT'} within {100 * COVERAGE_TOLERANCE:.0f} %")
    return '\n'.join(out)


def format_checks(checks: Sequence[Dict]) -> str:
    if not checks:
        return 'targets: none of the needed rows exist in this run'
    return '\n'.join(f"[{c['status']}] ({c['id']}) {c['target']} [{c['mode']}]: {c['detail']}" for c in checks)


def environment(args, device: torch.device) -> Dict:
    from mmhrsam.ops.selective_scan import resolve_scan_backend
    probe = torch.zeros(1, 1, 1, device=device, dtype=torch.bfloat16 if device.type == 'cuda' else torch.float32)
    try:
        scan = resolve_scan_backend('auto', probe)
    except Exception as exc:  # noqa: BLE001
        scan = f'unknown ({error_text(exc)})'
    return dict(torch=torch.__version__, device_name=torch.cuda.get_device_name(device) if device.type == 'cuda'
                else 'cpu', threads=torch.get_num_threads(), command=' '.join(sys.argv),
                attention_backend=ATTENTION_BACKENDS.resolve('auto', probe), scan_backend=scan, tiny=args.tiny,
                args={k: v for k, v in vars(args).items()})


def write_json(path: str, env: Dict, rows: Sequence[Dict]) -> None:
    with open(path, 'w') as f:
        json.dump(dict(env=env, results=list(rows), targets=target_checks(rows), claims=lightening_claims(rows)),
                  f, indent=1)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = finalize_args(build_parser().parse_args(argv))
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    env = environment(args, device)
    runner, rows = Runner(args, device), []
    cases = plan(args, device)
    bar = tqdm(cases, desc='encoder benchmark', unit='case')
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
    checks = target_checks(rows)
    print(format_pivot(rows))
    print()
    breakdown = format_breakdown(rows)
    if breakdown:
        print(breakdown)
        print()
    print(format_table(rows))
    print()
    print(format_checks(checks))
    claims = lightening_claims(rows)
    if claims:
        print('SAM-Lightening against its paper:')
        print(format_checks(claims))
    print(f'wrote {args.out}')
    return dict(env=env, results=rows, targets=checks, claims=claims)


if __name__ == '__main__':
    main()
