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
(out of memory, a failed compilation) is recorded with its error and the others still run. ``--tiny`` is a CPU smoke mode
(the quickstart model at 64²-256², two iterations each) used by the tests.

Examples::

    python tools/analysis/benchmark_training.py --out work_dirs/benchmark_training.json
    python tools/analysis/benchmark_training.py --cases distill --variants eager fused compile,fused
    python tools/analysis/benchmark_training.py --tiny --device cpu --out /tmp/bt.json
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mmhrsam  # noqa: E402,F401  (registers everything)
from count_flops import count_encoder, encoder_cfg  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from mmhrsam.registry import DATASETS, MODELS  # noqa: E402
from mmhrsam.structures import InteractiveDataSample  # noqa: E402

QUICKSTART = 'configs/quickstart/hrsam-tiny_kv-pad_1xb4_1000it_synthetic-256.py'
CLICK_VITB = 'configs/multi_gpu/hrsam_kv-pad_2xb2_200it_synthetic-1024.py'
DISTILL = 'configs/multi_gpu/hrsam_kv-pad_2xb4_300it_synthetic-sam-distill-1024.py'
CASES = ('quickstart', 'click-vitb', 'distill')
VARIANT_OPTIONS = ('eager', 'compile', 'fused', 'channels_last', 'no_scaler')
SYNC_CALLS = ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize')


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


class Clock:
    """The run's deadline."""

    def __init__(self, limit_s: float):
        self.end = time.perf_counter() + limit_s

    def left(self) -> float:
        return self.end - time.perf_counter()


def synchronize(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def matmul_rate(device: str, size: int, reps: int = 10) -> Dict:
    """Median FLOP/s of a (size x size) @ (size x size) matmul: bf16 on CUDA, fp32 on the CPU."""
    dtype = torch.bfloat16 if device.startswith('cuda') else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times = []
    for i in range(reps + 2):
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    return dict(size=size, dtype=str(dtype).replace('torch.', ''), seconds=seconds,
                flops_per_s=2 * size**3 / seconds)


# ---------------------------------------------------------------------------- measuring
class OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Operators dispatched (views excluded): a device-independent proxy for kernel launches."""

    VIEWS = frozenset(('view', '_unsafe_view', 't', 'transpose', 'permute', 'expand', 'slice', 'select',
                       'unsqueeze', 'squeeze', 'detach', 'alias', 'unfold', 'split', 'split_with_sizes',
                       'unbind', 'as_strided', 'lift_fresh', 'reshape'))

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split('.')[0] not in self.VIEWS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def start_profiler(device: str):
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith('cuda') else [])
    prof = profile(activities=activities)
    prof.start()
    return prof


def summarize_profile(prof, steps: int, device: str) -> Dict:
    """Per-step launch / sync / copy counts and top-15 tables of a stopped profiler."""
    names = [event.name for event in prof.events()]

    def per_step(test: Callable[[str], bool]) -> float:
        return sum(1 for name in names if test(name)) / steps

    counts = dict(kernel_launches=per_step(lambda n: n.startswith(('cudaLaunchKernel', 'cuLaunchKernel'))),
                  synchronizations=per_step(lambda n: n in SYNC_CALLS),
                  stream_synchronizations=per_step(lambda n: n == 'cudaStreamSynchronize'),
                  memcpy_calls=per_step(lambda n: n.startswith('cudaMemcpy')))
    averages = prof.key_averages()
    keys = (['self_device_time_total'] if device.startswith('cuda') else []) + ['self_cpu_time_total']
    return dict(per_step=counts, tables={key: averages.table(sort_by=key, row_limit=15) for key in keys})


def profile_steps(step: Callable[[], None], steps: int, device: str) -> Dict:
    """:func:`summarize_profile` of ``steps`` calls of ``step``."""
    prof = start_profiler(device)
    for _ in range(steps):
        step()
    synchronize(device)
    prof.stop()
    return summarize_profile(prof, steps, device)


def count_ops(step: Callable[[], None]) -> int:
    """Dispatched non-view operators of one step."""
    with OpCounter() as counter:
        step()
    return counter.count


def time_steps(step: Callable[[], None], warmup: int, iters: int, device: str, clock: Clock) -> Dict:
    """Median seconds of ``step`` (device-synchronized) after ``warmup`` untimed calls;
    stops early when the deadline is near, never below 3 timed calls."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(device)
    warmup_s = time.perf_counter() - t0
    times: List[float] = []
    while len(times) < iters and (len(times) < 3 or clock.left() > 2 * max(times)):
        t0 = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return dict(median_s=statistics.median(times), min_s=min(times), times_s=times, warmup_s=warmup_s)


def encoder_flops(model_cfg: dict, size: int) -> int:
    """Forward FLOPs of the image encoder on one size² image (count_flops.py's counter),
    counted once per encoder and size."""
    return _encoder_flops(json.dumps(encoder_cfg(model_cfg, size), sort_keys=True), size)


@functools.lru_cache(maxsize=None)
def _encoder_flops(cfg_json: str, size: int) -> int:
    return int(count_encoder(json.loads(cfg_json), size)['flops'])


# ---------------------------------------------------------------------------- configs and data
def load_config(path: str, tiny: bool, case: str) -> Config:
    """A case's config; with ``tiny`` the quickstart model stands in (SAMDistiller for distill)."""
    if not tiny or case == 'quickstart':
        return Config.fromfile(os.path.join(ROOT, path))
    cfg = Config.fromfile(os.path.join(ROOT, QUICKSTART))
    cfg.model.max_sim_iters = 2
    if case == 'distill':
        cfg.model = dict(type='SAMDistiller', frozen_modules=('head', ),
                         **{k: cfg.model[k] for k in ('backbone', 'head', 'data_preprocessor')})
    return cfg


def input_size(cfg: Config) -> int:
    return int(cfg.model.data_preprocessor.pad_size)


def optim_cfg(cfg: Config, device: str, variant: Sequence[str]) -> dict:
    """The config's optimizer wrapper, bf16 AMP on CUDA (as ``tools/train.py --amp``)."""
    wrapper = copy.deepcopy(cfg.optim_wrapper)
    if device.startswith('cuda'):
        wrapper.type, wrapper.dtype = 'AmpOptimWrapper', 'bfloat16'
    if 'no_scaler' in variant and device.startswith('cuda'):
        wrapper.loss_scale = dict(enabled=False)  # bf16 needs no loss scaling
    if 'fused' in variant:
        if wrapper.optimizer.get('foreach'):
            raise ValueError("variant 'fused' conflicts with the config's optimizer foreach=True")
        wrapper.optimizer.fused = True
    return wrapper


def click_batches(cfg: Config, batch: int, count: int) -> List[dict]:
    """``count`` batches from the config's own training dataset and pipeline."""
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return [pseudo_collate([dataset[i * batch + j] for j in range(batch)]) for i in range(count)]


def distill_batches(head, size: int, batch: int, count: int) -> List[dict]:
    """Random uint8 images and random teacher embeddings of the shape the student outputs
    (the embedding the SAM ``head`` takes: its width, one cell per ``head.stride`` pixels)."""
    grid = size // head.stride
    channels = head.prompt_encoder.embed_dim
    batches = []
    for _ in range(count):
        samples = []
        for i in range(batch):
            sample = InteractiveDataSample(metainfo=dict(img_id=str(i), img_shape=(size, size)))
            sample.teacher_embedding = torch.randn(channels, grid, grid)
            samples.append(sample)
        images = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8) for _ in range(batch)]
        batches.append(dict(inputs=images, data_samples=samples))
    return batches


# ---------------------------------------------------------------------------- step cases
def apply_variant(model, variant: Sequence[str]) -> None:
    """Channels-last and compile options, in place on a built model."""
    if 'channels_last' in variant:
        model.to(memory_format=torch.channels_last)
        preprocess = model.data_preprocessor.forward

        def channels_last_inputs(data: dict, training: bool = False) -> dict:
            out = preprocess(data, training)
            out['inputs'] = out['inputs'].contiguous(memory_format=torch.channels_last)
            return out
        model.data_preprocessor.forward = channels_last_inputs
    if 'compile' in variant:
        model.backbone.compile()  # in place: the first steps compile


def build_for_variant(cfg: Config, device: str, variant: Sequence[str]):
    """Model (train mode, on ``device``) and optimizer wrapper of one variant."""
    model = MODELS.build(cfg.model).to(device).train()
    wrapper = build_optim_wrapper(model, optim_cfg(cfg, device, variant))
    apply_variant(model, variant)
    return model, wrapper


def run_step_case(case: str, cfg: Config, batches: List[dict], variant: Sequence[str], args,
                  clock: Clock, rate: float) -> Dict:
    """Timing, op count, profile and MFU of one case and variant."""
    device, size = args.device, input_size(cfg)
    model, wrapper = build_for_variant(cfg, device, variant)
    batch = len(batches[0]['inputs'])
    calls = iter(range(10**9))

    def step() -> None:
        model.train_step(batches[next(calls) % len(batches)], wrapper)

    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    result = dict(case=case, variant=','.join(variant), batch=batch, size=size)
    result.update(time_steps(step, args.warmup, args.step_iters, device, clock))
    if device.startswith('cuda'):
        result['peak_mem_gib'] = torch.cuda.max_memory_allocated() / 2**30
    if 'compile' not in variant:  # dispatch-mode counting would re-trace a compiled module
        result['ops_per_step'] = count_ops(step)
    if args.profile_iters > 0 and clock.left() > 3 * args.profile_iters * result['median_s']:
        result['profile'] = profile_steps(step, args.profile_iters, device)
    flops = 3 * encoder_flops(cfg.model.to_dict(), size) * batch
    result.update(images_per_s=batch / result['median_s'], model_flops_per_step=flops,
                  mfu=flops / result['median_s'] / rate)
    del model, wrapper
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
    return result


# ---------------------------------------------------------------------------- quickstart (Runner)
class ProbeHook(Hook):
    """Applies the variant before training; clock readings after every iteration
    (device-synchronized), the op count of one ``train_step``, a profile of the last
    iterations, and a stop at the deadline."""

    priority = 'VERY_LOW'

    def __init__(self, variant: Sequence[str], count_at: int, profile_at: int, profile_iters: int, device: str,
                 clock: Clock):
        self.variant = variant
        self.count_at, self.profile_at, self.profile_iters = count_at, profile_at, profile_iters
        self.device, self.clock = device, clock
        self.stamps: Dict[int, float] = {}
        self.ops_per_step: Optional[int] = None
        self.prof = None
        self.profile: Optional[Dict] = None

    def before_train(self, runner) -> None:
        apply_variant(runner.model, self.variant)
        train_step = runner.model.train_step

        def counted_train_step(*args, **kwargs):
            if runner.iter != self.count_at or 'compile' in self.variant:
                return train_step(*args, **kwargs)
            with OpCounter() as counter:
                outputs = train_step(*args, **kwargs)
            self.ops_per_step = counter.count
            return outputs
        runner.model.train_step = counted_train_step

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter == self.profile_at and self.profile_iters > 0:
            self.prof = start_profiler(self.device)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        synchronize(self.device)
        self.stamps[runner.iter] = time.perf_counter()
        if self.prof is not None and runner.iter == self.profile_at + self.profile_iters - 1:
            self.prof.stop()
            self.profile, self.prof = summarize_profile(self.prof, self.profile_iters, self.device), None
        if self.clock.left() < 0 and runner.iter < self.profile_at:
            runner.train_loop.stop_training = True


def run_quickstart(args, variant: Sequence[str], clock: Clock) -> Dict:
    """The quickstart config through MMEngine's Runner, as ``tools/train.py CONFIG --amp``."""
    from mmengine.runner import Runner
    cfg = load_config(QUICKSTART, args.tiny, 'quickstart')
    count_at = args.warmup  # untimed: the dispatch mode slows that iteration down
    profile_at = count_at + 1 + args.iters
    cfg.train_cfg.max_iters = profile_at + args.profile_iters
    cfg.work_dir = tempfile.mkdtemp(prefix='benchmark_training_')
    cfg.launcher, cfg.log_level = 'none', 'WARNING'
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=10**9, save_last=False)
    cfg.default_hooks.logger.interval = 10**9
    if args.workers is not None:
        cfg.train_dataloader.num_workers = args.workers
        cfg.train_dataloader.persistent_workers = args.workers > 0
    cfg.optim_wrapper = optim_cfg(cfg, args.device, variant)
    probe = ProbeHook(variant, count_at, profile_at, args.profile_iters, args.device, clock)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(probe)
    runner.train()
    timed = [probe.stamps[i] - probe.stamps[i - 1] for i in range(count_at + 1, profile_at)
             if i in probe.stamps and i - 1 in probe.stamps]
    if not timed:
        return dict(case='quickstart', variant=','.join(variant), skipped='no timed iteration in time')
    batch = cfg.train_dataloader.batch_size
    return dict(case='quickstart', variant=','.join(variant), batch=batch, size=input_size(cfg),
                num_workers=cfg.train_dataloader.num_workers, median_s=statistics.median(timed),
                min_s=min(timed), times_s=timed, images_per_s=batch / statistics.median(timed),
                ops_per_step=probe.ops_per_step, profile=probe.profile)


# ---------------------------------------------------------------------------- main
def step_cases(args, clock: Clock, rate: float) -> List[Dict]:
    """click-vitb and distill, every variant; data made once per case."""
    results = []
    for case in [c for c in args.cases if c != 'quickstart']:
        cfg = load_config(CLICK_VITB if case == 'click-vitb' else DISTILL, args.tiny, case)
        if case == 'click-vitb':
            batches = click_batches(cfg, args.vitb_batch, args.batches)
        else:
            with torch.device('meta'):
                head = MODELS.build(cfg.model).head
            batches = distill_batches(head, input_size(cfg), args.distill_batch, args.batches)
        for variant in args.variants:
            results.append(guarded(case, variant, clock, lambda: run_step_case(case, cfg, batches, variant, args,
                                                                               clock, rate)))
            report(results[-1])
    return results


def guarded(case: str, variant: Sequence[str], clock: Clock, run: Callable[[], Dict]) -> Dict:
    """``run()``, or a row saying why not: the time limit, or the error it raised (out of
    memory, a failed compilation); the other cases still run."""
    if clock.left() < 10:
        return dict(case=case, variant=','.join(variant), skipped='time limit')
    try:
        return run()
    except Exception as error:  # noqa: BLE001  (recorded, and the run goes on)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return dict(case=case, variant=','.join(variant), skipped=f'error: {type(error).__name__}: {error}'[:500])


def report(result: Dict) -> None:
    """One line per result, then the profile counts and tables."""
    if 'skipped' in result:
        print(f"{result['case']:<11} {result.get('variant', ''):<18} skipped: {result['skipped']}", flush=True)
        return
    line = (f"{result['case']:<11} {result['variant']:<18} batch {result['batch']} @ {result['size']}²: "
            f"{result['median_s'] * 1e3:8.1f} ms/it (min {result['min_s'] * 1e3:.1f})  "
            f"{result['images_per_s']:7.1f} img/s  ops/step {result.get('ops_per_step')}")
    if 'mfu' in result:
        line += f"  MFU {100 * result['mfu']:.1f}%"
    print(line, flush=True)
    profile = result.get('profile')
    if profile:
        print('  per step: ' + ', '.join(f'{k} {v:.1f}' for k, v in profile['per_step'].items()))
        for key, table in profile['tables'].items():
            print(f'  top-15 by {key}:\n{table}')


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
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(out, f, indent=1)
        print(f'wrote {args.out}')
    return out


if __name__ == '__main__':
    main()
