"""Does local attention extrapolate from 1024² to 2048² / 4096² better than global attention?

The study of docs/extrapolation_study.md (HRSAM paper, Fig. 1 and Sec. 3), driven through the
real tools as subprocesses:

1. ``tools/train.py --amp`` trains the three models of ``configs/studies/`` (global attention,
   Flash Swin, full HRSAM: KV-padded Flash Swin + Cycle-scan), identical but for the token
   mixer, at 1024² on the synthetic scenes, concurrently (``--jobs-per-device`` per GPU);
2. ``tools/test.py`` evaluates each checkpoint with the click protocol at every
   ``--eval-sizes`` on the same held-out scenes (per-click mIoU, NoC@85/90, per-instance IoUs);
3. ``tools/analysis/attention_scores.py`` measures each model's top-1 attention scores per
   layer at every size;
4. everything goes into ``<out>/extrapolation_study.json`` (rewritten after every finished
   job, so a cut-off run keeps what it finished), the tables into ``extrapolation_study.md``
   and the plots (``plot``) into PNGs next to them; ``--bundle`` packs ``--out`` and the work
   dir without checkpoints into one ``.tar.gz`` (for machines that return few files).

``collect`` rebuilds the JSON from a run's work dir alone (checkpoints not needed; the few
settings and wall times a work dir cannot tell are marked missing), then plots it.

Usage::

    python3 tools/analysis/extrapolation_study.py run --work-dir work_dirs/extrapolation --out OUT [--bundle B.tar.gz]
    python3 tools/analysis/extrapolation_study.py plot --out OUT
    python3 tools/analysis/extrapolation_study.py collect --work-dir work_dirs/extrapolation --out OUT
    python3 tools/analysis/extrapolation_study.py run --tiny --work-dir W --out OUT   # CPU, < 1 minute

``--tiny`` shrinks scenes, windows, schedule and click budget (``TINY_OPTIONS``) so that the
whole pipeline runs on a CPU in well under a minute; its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import calendar
import concurrent.futures
import csv
import glob
import json
import os
import os.path as osp
import queue
import re
import runpy
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)  # run from a checkout without installing, as the other tools
#: Model key -> (config, label), in plotting order.
MODELS = {
    'global': ('configs/studies/hrsam-tiny_global_1xb4_600it_synthetic-1024.py', 'Global attention'),
    'flash-swin': ('configs/studies/hrsam-tiny_flash-swin_1xb4_600it_synthetic-1024.py', 'Flash Swin'),
    'hrsam': ('configs/studies/hrsam-tiny_kv-pad+cycle-scan_1xb4_600it_synthetic-1024.py',
              'HRSAM (KV-pad + Cycle-scan)'),
}
#: Warm-up iterations of the study configs' schedule (shortened for very short runs).
WARMUP_ITERS = 50
#: ``--tiny``: 128² training on 128-192 px scenes, 4² windows (so that windows stay local on
#: 8x8 tokens), batch 2, 2 test scenes, 5 clicks, no dataloader workers.
TINY_OPTIONS = [
    'model.backbone.window_size=4', 'model.backbone.pretrain_grid=8', 'model.head.image_size=128',
    'model.data_preprocessor.pad_size=128', 'model.max_sim_iters=2',
    'train_dataloader.dataset.pipeline.1.long_side=128', 'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'train_dataloader.dataset.image_size=[128,192]', 'train_dataloader.dataset.num_images=32',
    'test_dataloader.num_workers=0', 'test_dataloader.dataset.image_size=[128,192]',
    'test_dataloader.dataset.num_images=2', 'test_cfg.max_clicks=5', 'test_evaluator.max_clicks=5',
    'default_hooks.logger.interval=1',
]
TINY_DEFAULTS = dict(iters=2, eval_sizes=[128, 256], score_images=1)
#: NVLink multicast stays off (a program using it can take a shared host's GPUs down).
NO_MULTICAST = dict(NCCL_NVLS_ENABLE='0', TORCH_SYMM_MEM_DISABLE_MULTICAST='1', NVSHMEM_DISABLE_NVLS='1')


# ---------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One tool run: ``args`` after the Python interpreter, its log, and what to do with it."""
    name: str
    args: List[str]
    on_done: Callable[[float], None]
    needs: List[str] = field(default_factory=list)  # files that must exist (a training's checkpoint)


def run_forked(args: List[str], env: Dict[str, str], log_path: str, threads: int) -> int:
    """``python args...`` in a forked child of this process; returns its exit code.

    Only for CPU runs: the child inherits the parent's imports (torch, MMEngine, mmhrsam: the
    main cost of a tiny run) and runs the tool as ``__main__``. GPU runs use fresh interpreters,
    which inherit no CUDA state.
    """
    pid = os.fork()
    if pid:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    code = 1
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # new stream objects: the parent's may have been locked by another thread at fork time
        sys.stdout = os.fdopen(os.dup(1), 'w', buffering=1)
        sys.stderr = os.fdopen(os.dup(2), 'w', buffering=1)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(ROOT)
        import torch
        torch.set_num_threads(threads)
        sys.argv = list(args)
        runpy.run_path(args[0], run_name='__main__')
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:  # noqa: BLE001  reported in the job's log, as a subprocess would
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Runner:
    """Runs jobs, ``per_device`` at a time on each device, with one deadline.

    Each job sees only its device (``CUDA_VISIBLE_DEVICES``) and an equal share of the host's
    cores as torch threads; its output goes to ``<log_dir>/<job name>.log``. On GPUs every job is a fresh ``python`` subprocess; on the CPU a
    forked child of this process (:func:`run_forked`). A job that fails is recorded and the
    others go on; jobs not started by the deadline are skipped and recorded.
    """

    def __init__(self, log_dir: str, devices: List[str], per_device: int, deadline: Optional[float]):
        self.log_dir, self.devices, self.deadline = log_dir, devices, deadline
        os.makedirs(log_dir, exist_ok=True)
        self.slots: 'queue.Queue[str]' = queue.Queue()
        for _ in range(per_device):
            for device in devices:
                self.slots.put(device)
        self.workers = len(devices) * per_device
        self.threads = max(1, (os.cpu_count() or 1) // self.workers)
        self.failed: Dict[str, str] = {}
        self.skipped: Dict[str, str] = {}
        self.fork = devices == ['cpu']
        if self.fork:  # imported once here, before any thread starts, then shared by every child
            import mmengine.runner  # noqa: F401
            import mmhrsam  # noqa: F401

    def env(self, device: str) -> Dict[str, str]:
        path = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
        return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS=str(self.threads),
                    CUDA_VISIBLE_DEVICES='' if device == 'cpu' else device, **NO_MULTICAST)

    def _run(self, job: Job) -> None:
        missing = [p for p in job.needs if not osp.isfile(p)]
        if missing:
            self.skipped[job.name] = f'missing {missing} (an earlier job failed or was skipped)'
            return
        if self.deadline is not None and time.time() > self.deadline:
            self.skipped[job.name] = 'not started: --time-limit-s reached'
            return
        device = self.slots.get()
        log_path = osp.join(self.log_dir, f'{job.name}.log')
        try:
            start = time.perf_counter()
            if self.fork:
                code = run_forked(job.args, self.env(device), log_path, self.threads)
            else:
                with open(log_path, 'w') as log:
                    code = subprocess.run([sys.executable] + job.args, cwd=ROOT, env=self.env(device), stdout=log,
                                          stderr=subprocess.STDOUT).returncode
            seconds = time.perf_counter() - start
        finally:
            self.slots.put(device)
        if code != 0:
            self.failed[job.name] = f'exit code {code}; see {log_path}'
            print(f'{job.name}: FAILED ({code}), log {log_path}', flush=True)
            return
        print(f'{job.name}: done in {seconds:.0f} s (device {device})', flush=True)
        try:
            job.on_done(seconds)
        except Exception as e:  # noqa: BLE001  one unreadable result must not stop the other jobs
            self.failed[job.name] = f'its results could not be read: {e!r}'
            print(f'{job.name}: results unreadable: {e!r}', flush=True)

    def run(self, jobs: List[Job]) -> None:
        """Run ``jobs`` (started in list order) and wait for all of them."""
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            for future in [pool.submit(self._run, job) for job in jobs]:
                future.result()


# ---------------------------------------------------------------------- reading the tools' outputs
def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def only(pattern: str) -> str:
    """The single file matching ``pattern`` (tools write under a timestamped run folder)."""
    matches = sorted(glob.glob(pattern))
    if len(matches) != 1:
        raise RuntimeError(f'expected one file matching {pattern}, found {matches}')
    return matches[0]


def training_record(work_dir: str, seconds: Optional[float]) -> dict:
    """Checkpoint, wall time and logged loss curve (every logger interval) of one training run."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    iters, loss = [], []
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')):  # none: ran < one log interval
        with open(path) as f:
            for rec in map(json.loads, f):
                if 'loss' in rec:
                    iters.append(rec['iter'])
                    loss.append(rec['loss'])
    return dict(checkpoint=checkpoint, wall_s=seconds, loss_iters=iters, loss=loss)


def evaluation_record(run_dir: str, seconds: Optional[float]) -> dict:
    """tools/test.py's summary plus the per-instance IoU after every click.

    Args:
        run_dir (str): the test run's timestamped folder (``summary.json``, ``per_instance.csv``).
        seconds (float, optional): the job's wall time; None where unknown.
    """
    summary = read_json(osp.join(run_dir, 'summary.json'))
    with open(osp.join(run_dir, 'per_instance.csv')) as f:
        rows = list(csv.DictReader(f))
    clicks = len(summary['miou_curve'])
    ious = [[float(r[f'iou_{k}']) for k in range(1, clicks + 1)] for r in rows]
    return dict(metrics=summary['metrics'], miou_curve=summary['miou_curve'], max_clicks=summary['max_clicks'],
                instances=[f"{r['img_id']}/{r['instance_id']}" for r in rows], ious=ious, wall_s=seconds)


def scores_record(out_dir: str, seconds: Optional[float]) -> dict:
    """Per size: mean, minimum and quartiles of the top-1 attention score per layer."""
    data = read_json(osp.join(out_dir, 'attention_scores.json'))
    per_size = {}
    for size, layers in data['results'].items():
        per_size[size] = {key: [layers[name][key] for name in data['layers']]
                          for key in ('mean', 'min', 'q25', 'q50', 'q75')}
    return dict(layers=data['layers'], layer_types=data['layer_types'], sizes=per_size, wall_s=seconds)


# ---------------------------------------------------------------------- the study
class Study:
    """Builds the jobs of one run and collects their results into one JSON file."""

    def __init__(self, args):
        self.args = args
        self.work_dir = osp.abspath(args.work_dir)
        self.out = osp.abspath(args.out)
        os.makedirs(self.work_dir, exist_ok=True)
        os.makedirs(self.out, exist_ok=True)
        self.lock = threading.Lock()
        self.result = dict(settings=self.settings(), train={}, eval={}, attention={}, failed={}, skipped={})

    def settings(self) -> dict:
        a = self.args
        return dict(models={m: dict(config=MODELS[m][0], label=MODELS[m][1]) for m in a.models}, iters=a.iters,
                    eval_sizes=a.eval_sizes, score_sizes=a.score_sizes, score_images=a.score_images,
                    devices=a.devices, precision=a.precision, amp=a.amp, tiny=a.tiny, cfg_options=a.options)

    def save(self) -> None:
        with self.lock, open(osp.join(self.out, 'extrapolation_study.json'), 'w') as f:
            json.dump(self.result, f, indent=1)

    def record(self, section: str, *keys, value) -> None:
        with self.lock:
            node = self.result[section]
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value
        self.save()

    def options(self, extra: List[str] = ()) -> List[str]:
        options = list(self.args.options) + list(extra)
        return ['--cfg-options'] + options if options else []

    def checkpoint(self, model: str) -> str:
        return osp.join(self.work_dir, model, 'train', f'iter_{self.args.iters}.pth')

    def train_job(self, model: str) -> Job:
        n, warmup = self.args.iters, min(WARMUP_ITERS, max(1, self.args.iters // 10))
        work_dir = osp.join(self.work_dir, model, 'train')
        schedule = [f'train_cfg.max_iters={n}', f'param_scheduler.0.end={warmup}',
                    f'param_scheduler.1.begin={warmup}', f'param_scheduler.1.end={n}']
        args = ['tools/train.py', MODELS[model][0], '--work-dir', work_dir] + (['--amp'] if self.args.amp else [])
        return Job(f'train_{model}', args + self.options(schedule),
                   lambda s: self.record('train', model, value=training_record(work_dir, s)))

    def eval_job(self, model: str, size: int) -> Job:
        work_dir = osp.join(self.work_dir, model, f'test_{size}')
        args = ['tools/test.py', MODELS[model][0], self.checkpoint(model), '--work-dir', work_dir,
                '--target-size', str(size), '--precision', self.args.precision]
        run_dir = lambda: osp.dirname(only(osp.join(work_dir, '*', 'summary.json')))  # noqa: E731
        return Job(f'test_{model}_{size}', args + self.options(),
                   lambda s: self.record('eval', model, str(size), value=evaluation_record(run_dir(), s)),
                   needs=[self.checkpoint(model)])

    def scores_job(self, model: str) -> Job:
        out_dir = osp.join(self.work_dir, model, 'attention_scores')
        args = ['tools/analysis/attention_scores.py', MODELS[model][0], self.checkpoint(model), '--sizes',
                *map(str, self.args.score_sizes), '--images', str(self.args.score_images), '--out', out_dir,
                '--precision', self.args.precision]

        def done(seconds: float) -> None:
            shutil.copy(osp.join(out_dir, 'attention_scores.png'), osp.join(self.out, f'attention_scores_{model}.png'))
            self.record('attention', model, value=scores_record(out_dir, seconds))

        return Job(f'attention_scores_{model}', args + self.options(), done, needs=[self.checkpoint(model)])

    def run(self) -> dict:
        a = self.args
        deadline = None if a.time_limit_s is None else time.time() + a.time_limit_s
        runner = Runner(osp.join(self.out, 'logs'), a.devices, a.jobs_per_device, deadline)
        start = time.perf_counter()
        self.save()
        runner.run([self.train_job(m) for m in a.models])
        self.result.update(train_wall_s=time.perf_counter() - start, failed=runner.failed, skipped=runner.skipped)
        self.save()
        # Smaller sizes first, the attention scores before the largest size: what a cut-off run
        # loses is the most expensive, least essential part.
        sizes = sorted(a.eval_sizes)
        jobs = [self.eval_job(m, s) for s in sizes[:-1] for m in a.models]
        jobs += [self.scores_job(m) for m in a.models] + [self.eval_job(m, sizes[-1]) for m in a.models]
        runner.run(jobs)
        self.result.update(failed=runner.failed, skipped=runner.skipped, total_wall_s=time.perf_counter() - start,
                           eval_wall_s=time.perf_counter() - start - self.result['train_wall_s'])
        self.save()
        return self.result


# ---------------------------------------------------------------------- rebuilding the JSON from a work dir
#: An MMEngine log line's timestamp (1 s resolution).
LOG_TIME = re.compile(r'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - ')
#: Settings that only the driver's command line knows.
NOT_IN_WORK_DIR = dict(devices='the GPUs are not recorded in the work dir',
                       tiny='not recorded in the work dir (the dumped configs hold the effective settings)',
                       cfg_options='not recorded as a list (the dumped configs hold their effect)')
WALL_NOTE = ("wall times from the MMEngine logs' timestamps (1 s resolution): each leaves out the tool's "
             'start-up before its first log line and its exit, so they are lower bounds of what `run` '
             'measures; train_wall_s spans the first training log line to the last, eval_wall_s the last '
             "training log line to the last test log line (the attention-score jobs' ends are not known)")


def log_span(paths: List[str]) -> Optional[Tuple[float, float]]:
    """First and last timestamp (seconds) over MMEngine logs; None if they hold none."""
    stamps = []
    for path in paths:
        with open(path) as f:
            stamps += [calendar.timegm(time.strptime(m.group(1), '%Y/%m/%d %H:%M:%S'))
                       for m in map(LOG_TIME.match, f) if m]
    return (min(stamps), max(stamps)) if stamps else None


def dumped_config(job_dir: str, model: str):
    """The config MMEngine dumped into a job's work dir (the study config with the run's options)."""
    from mmengine.config import Config
    path = osp.join(job_dir, osp.basename(MODELS[model][0]))
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} is missing: {job_dir} was not written by a run of {MODELS[model][0]}')
    return Config.fromfile(path)


class Collector:
    """Rebuilds ``extrapolation_study.json`` from a run's work dir (finished or cut off).

    The records are read from the tools' own outputs with the functions ``run`` uses, so the
    JSON has ``run``'s schema; what a work dir cannot tell is None and listed, with the reason,
    under ``collected.missing`` (the command line's devices and options, the jobs that left no
    results, the attention-score jobs' wall times). Wall times: see ``WALL_NOTE``.

    Args:
        work_dir (str): the ``--work-dir`` of the run (``<model>/train``, ``<model>/test_<size>``,
            ``<model>/attention_scores``); checkpoints are not needed.
    """

    def __init__(self, work_dir: str):
        self.work_dir = osp.abspath(work_dir)
        self.models = [m for m in MODELS if osp.isdir(osp.join(self.work_dir, m))]
        if not self.models:
            raise FileNotFoundError(f'no model folder ({", ".join(MODELS)}) in {self.work_dir}')
        self.missing: Dict[str, str] = dict(NOT_IN_WORK_DIR)
        self.notes: List[str] = [WALL_NOTE]
        self.spans: Dict[str, Dict[str, Tuple[float, float]]] = dict(train={}, eval={})
        self.result = dict(settings={}, train={}, eval={}, attention={}, failed=None, skipped=None)
        for key in ('failed', 'skipped'):
            self.missing[key] = "the driver's record, not in the work dir; jobs that left no results are listed here"

    def wall_s(self, key: str, logs: List[str]) -> Optional[float]:
        span = log_span(logs)
        if span is None:
            self.missing[f'{key}/wall_s'] = 'no timestamped MMEngine log'
            return None
        self.spans[key.split('/')[0]][key] = span
        return span[1] - span[0]

    def train(self, model: str) -> None:
        job_dir = osp.join(self.work_dir, model, 'train')
        if not osp.isfile(osp.join(job_dir, 'last_checkpoint')):
            self.missing[f'train/{model}'] = f'no {job_dir}/last_checkpoint: failed, skipped or cut off'
            return
        logs = glob.glob(osp.join(job_dir, '*', '*.log'))
        if len(logs) > 1:
            self.notes.append(f'train/{model}: {len(logs)} training runs (resumed?); its wall time spans them all')
        self.result['train'][model] = training_record(job_dir, self.wall_s(f'train/{model}', logs))

    def evals(self, model: str) -> None:
        for job_dir in sorted(glob.glob(osp.join(self.work_dir, model, 'test_*'))):
            size = osp.basename(job_dir)[len('test_'):]
            runs = sorted(osp.dirname(p) for p in glob.glob(osp.join(job_dir, '*', 'summary.json')))
            if not size.isdigit() or not runs:
                self.missing[f'eval/{model}/{size}'] = f'no {job_dir}/<run>/summary.json: failed or cut off'
                continue
            if len(runs) > 1:  # timestamped folders: the last one is the newest
                self.notes.append(f'eval/{model}/{size}: {len(runs)} test runs, the newest ({runs[-1]}) is used')
            seconds = self.wall_s(f'eval/{model}/{size}', glob.glob(osp.join(runs[-1], '*.log')))
            self.result['eval'].setdefault(model, {})[size] = evaluation_record(runs[-1], seconds)

    def attention(self, model: str, out: str) -> None:
        out_dir = osp.join(self.work_dir, model, 'attention_scores')
        if not osp.isfile(osp.join(out_dir, 'attention_scores.json')):
            self.missing[f'attention/{model}'] = f'no {out_dir}/attention_scores.json: failed, skipped or cut off'
            return
        self.result['attention'][model] = scores_record(out_dir, None)
        self.missing[f'attention/{model}/wall_s'] = "the attention-score tool logs to the driver's <out>/logs only"
        if osp.isfile(osp.join(out_dir, 'attention_scores.png')):
            shutil.copy(osp.join(out_dir, 'attention_scores.png'), osp.join(out, f'attention_scores_{model}.png'))

    def one(self, key: str, values: set):
        """The value every job agrees on; None (and listed as missing) if they differ or none has one."""
        if len(values) == 1 and None not in values:
            return next(iter(values))
        self.missing[f'settings/{key}'] = f'the jobs recorded {sorted(map(str, values))}'
        return None

    def settings(self) -> dict:
        trained = {m: dumped_config(osp.join(self.work_dir, m, 'train'), m) for m in self.result['train']}
        scores = [read_json(osp.join(self.work_dir, m, 'attention_scores', 'attention_scores.json'))
                  for m in self.result['attention']]
        eval_sizes = sorted({int(s) for ev in self.result['eval'].values() for s in ev})
        for model in self.models:
            for size in map(str, eval_sizes):
                if size not in self.result['eval'].get(model, {}):
                    self.missing.setdefault(f'eval/{model}/{size}', 'no test folder: failed, skipped or cut off')
        precisions = {d['precision'] for d in scores} | {
            dumped_config(osp.join(self.work_dir, m, f'test_{s}'), m).test_cfg.get('precision')
            for m, ev in self.result['eval'].items() for s in ev}
        return dict(models={m: dict(config=MODELS[m][0], label=MODELS[m][1]) for m in self.models},
                    iters=self.one('iters', {c.train_cfg.max_iters for c in trained.values()}),
                    eval_sizes=eval_sizes, score_sizes=sorted({int(s) for d in scores for s in d['results']}),
                    score_images=self.one('score_images', {len(d['inputs']) if isinstance(d['inputs'], list)
                                                           else None for d in scores}),
                    devices=None, precision=self.one('precision', precisions),
                    amp=self.one('amp', {c.optim_wrapper.get('type') == 'AmpOptimWrapper' for c in trained.values()}),
                    tiny=None, cfg_options=None)

    def wall_times(self) -> dict:
        train, evals = list(self.spans['train'].values()), list(self.spans['eval'].values())
        if not train:
            self.missing['train_wall_s'] = self.missing['eval_wall_s'] = 'no training log'
            return dict(train_wall_s=None, eval_wall_s=None, total_wall_s=None)
        start, train_end = min(s for s, _ in train), max(e for _, e in train)
        end = max([e for _, e in evals] + [train_end])
        return dict(train_wall_s=train_end - start, eval_wall_s=end - train_end, total_wall_s=end - start)

    def collect(self, out: str) -> dict:
        """The rebuilt record; copies each model's attention-score PNG into ``out``."""
        for model in self.models:
            self.train(model)
            self.evals(model)
            self.attention(model, out)
        self.result['settings'] = self.settings()
        self.result.update(self.wall_times())
        self.result['collected'] = dict(work_dir=self.work_dir, missing=self.missing, notes=self.notes)
        return self.result


def stage_collect(work_dir: str, out: str) -> dict:
    """``collect``: the JSON rebuilt from ``work_dir``, then the tables and PNGs, into ``out``."""
    os.makedirs(out, exist_ok=True)
    data = Collector(work_dir).collect(out)
    with open(osp.join(out, 'extrapolation_study.json'), 'w') as f:
        json.dump(data, f, indent=1)
    stage_plot(out)
    return data


def write_bundle(path: str, out: str, work_dir: str) -> None:
    """One ``.tar.gz`` of ``out`` (as ``out/``) and ``work_dir`` without checkpoints (as ``work_dir/``).

    For machines that return few files: unpacked, ``collect --work-dir work_dir`` rebuilds the
    study from it, and ``out/`` holds the run's own JSON, tables, PNGs and tool logs.
    """
    def no_checkpoints(info: tarfile.TarInfo) -> Optional[tarfile.TarInfo]:
        return None if info.name.endswith('.pth') else info

    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with tarfile.open(path, 'w:gz') as tar:  # tarfile skips the archive itself if it lies inside
        for folder, name in ((out, 'out'), (work_dir, 'work_dir')):
            if osp.isdir(folder):  # a run that failed early may not have made both
                tar.add(folder, arcname=name, filter=no_checkpoints)
    print(f'wrote {path} ({osp.getsize(path) / 2 ** 20:.1f} MiB)', flush=True)


# ---------------------------------------------------------------------- tables and plots
def click_table(data: dict) -> List[str]:
    """Click metrics per model and size; Δ is 5-mIoU relative to the model's first size."""
    labels = {m: s['label'] for m, s in data['settings']['models'].items()}
    sizes = [str(s) for s in data['settings']['eval_sizes']]
    lines = [f'| model | size | mIoU@1 | 5-mIoU | Δ 5-mIoU vs {sizes[0]}² | mIoU at the last click | NoC@85 | '
             'NoC@90 | NoF@90 |', '|---|---:|' + '---:|' * 7]
    for model, label in labels.items():
        evals = data['eval'].get(model, {})
        for size in sizes:
            ev = evals.get(size)
            if ev is None:
                lines.append(f'| {label} | {size}² | ' + ' | '.join(['n/a'] * 7) + ' |')
                continue
            m, curve = ev['metrics'], ev['miou_curve']
            five = curve[min(4, len(curve) - 1)]
            base = evals.get(sizes[0])
            delta = ('—' if size == sizes[0] else 'n/a' if base is None
                     else f"{100 * (five / base['miou_curve'][min(4, len(curve) - 1)] - 1):+.1f} %")
            lines.append(f"| {label} | {size}² | {curve[0]:.3f} | {five:.3f} | {delta} | {curve[-1]:.3f} | "
                         f"{m['NoC@85']:.2f} | {m['NoC@90']:.2f} | {m['NoF@90']} |")
    return lines


def attention_table(data: dict) -> List[str]:
    """Mean top-1 attention score per layer and size, its mean over layers and the mean median."""
    labels = {m: s['label'] for m, s in data['settings']['models'].items() if m in data['attention']}
    if not labels:
        return []
    num_layers = max(len(data['attention'][m]['layers']) for m in labels)
    lines = ['| model | size | ' + ' | '.join(f'layer {i}' for i in range(num_layers)) + ' | mean | median |',
             '|---|---:|' + '---:|' * (num_layers + 2)]
    for model, label in labels.items():
        for size in map(str, data['settings']['score_sizes']):
            stats = data['attention'][model]['sizes'].get(size)
            if stats is None:
                continue
            layers = [f'{v:.3f}' for v in stats['mean']] + [''] * (num_layers - len(stats['mean']))
            mean, median = (sum(stats[k]) / len(stats[k]) for k in ('mean', 'q50'))
            lines.append(f'| {label} | {size}² | ' + ' | '.join(layers) + f' | {mean:.3f} | {median:.4f} |')
    return lines


def markdown_tables(data: dict) -> str:
    """The click-metric table and the top-1 attention-score table (per layer; median over tokens)."""
    return '\n'.join(click_table(data) + [''] + attention_table(data)) + '\n'


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:  # a panel of a cut-off run may have nothing yet
        ax.legend(fontsize=7)


def _plot_miou(ax_row, data: dict, labels: dict, sizes: List[str]) -> None:
    for ax, size in zip(ax_row, sizes):
        for model, label in labels.items():
            ev = data['eval'].get(model, {}).get(size)
            if ev:
                ax.plot(range(1, len(ev['miou_curve']) + 1), ev['miou_curve'], marker='.', label=label)
        ax.set(title=f'evaluated at {size}²', xlabel='clicks', ylabel='mIoU')
        ax.grid(alpha=0.3)
        _legend(ax)


def _plot_noc(ax_row, data: dict, labels: dict, sizes: List[str]) -> None:
    width = 0.8 / max(len(labels), 1)
    for ax, key in zip(ax_row, ('NoC@85', 'NoC@90')):
        for i, (model, label) in enumerate(labels.items()):
            values = [data['eval'].get(model, {}).get(s, {}).get('metrics', {}).get(key, float('nan')) for s in sizes]
            ax.bar([j + i * width for j in range(len(sizes))], values, width, label=label)
        ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(sizes))], [f'{s}²' for s in sizes])
        ax.set(title=f'{key} (lower is better)', ylabel='clicks')
        ax.set_ylim(top=ax.get_ylim()[1] * 1.35)  # room for the legend above the bars
        _legend(ax)


def _plot_attention(ax_row, data: dict, labels: dict, models: List[str]) -> None:
    for ax, model in zip(ax_row, models):
        att = data['attention'][model]
        for size, stats in att['sizes'].items():
            ax.plot(range(len(att['layers'])), stats['mean'], marker='o', label=f'{size}²')
        ax.set(title=labels[model], xlabel='layer', ylabel='mean top-1 attention score', yscale='log')
        ax.grid(alpha=0.3)
        _legend(ax)


def _plot_loss(ax, data: dict, labels: dict) -> None:
    for model, label in labels.items():
        rec = data['train'].get(model)
        if rec:
            ax.plot(rec['loss_iters'], rec['loss'], label=label)
    ax.set(xlabel='iteration', ylabel='training loss', title='click training')
    ax.grid(alpha=0.3)
    _legend(ax)


def plot_study(data: dict, out: str) -> List[str]:
    """The study's PNGs (mIoU curves, NoC bars, mean top-1 scores, training loss); returns their paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels = {m: s['label'] for m, s in data['settings']['models'].items()}
    sizes = [str(s) for s in data['settings']['eval_sizes']]
    attended = [m for m in labels if m in data['attention']]
    figures = [('miou_vs_clicks.png', len(sizes), lambda axes: _plot_miou(axes, data, labels, sizes)),
               ('noc.png', 2, lambda axes: _plot_noc(axes, data, labels, sizes)),
               ('attention_top1_mean.png', len(attended), lambda axes: _plot_attention(axes, data, labels, attended)),
               ('train_loss.png', 1 if data['train'] else 0, lambda axes: _plot_loss(axes[0], data, labels))]
    paths = []
    for name, panels, draw in figures:
        if not panels:
            continue
        fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), dpi=110, squeeze=False)
        draw(axes[0])
        fig.tight_layout()
        fig.savefig(osp.join(out, name))
        plt.close(fig)
        paths.append(osp.join(out, name))
    return paths


def run_notes(data: dict) -> str:
    """Wall times, and for a JSON rebuilt by ``collect`` what its work dir could not tell."""
    walls = [f'{key[:-7]} {data[key]:.0f} s' for key in ('train_wall_s', 'eval_wall_s', 'total_wall_s')
             if data.get(key) is not None]
    lines = ['', 'Wall times: ' + (', '.join(walls) if walls else 'not recorded') + '.']
    if 'collected' in data:
        lines += ['', f"Rebuilt by `collect` from {data['collected']['work_dir']}. Notes: "
                  + '; '.join(data['collected']['notes']) + '.', '', 'Missing:', '']
        lines += [f'- `{key}`: {why}' for key, why in data['collected']['missing'].items()]
    return '\n'.join(lines) + '\n'


def stage_plot(out: str) -> None:
    data = read_json(osp.join(out, 'extrapolation_study.json'))
    tables = markdown_tables(data) + run_notes(data)
    with open(osp.join(out, 'extrapolation_study.md'), 'w') as f:
        f.write(tables)
    paths = plot_study(data, out)
    print(tables + '\nwrote ' + ', '.join(osp.basename(p) for p in paths) + f' and extrapolation_study.md in {out}')


# ---------------------------------------------------------------------- command line
def visible_gpus() -> List[str]:
    """The GPUs this process sees, named as ``CUDA_VISIBLE_DEVICES`` names them for the jobs."""
    import torch
    count = torch.cuda.device_count()
    visible = [d.strip() for d in os.environ.get('CUDA_VISIBLE_DEVICES', '').split(',') if d.strip()]
    return visible[:count] if visible else [str(i) for i in range(count)]


#: Options of the ``run`` stage alone.
RUN_ONLY = ('models', 'iters', 'eval_sizes', 'score_sizes', 'score_images', 'gpu_ids', 'jobs_per_device',
            'time_limit_s', 'tiny', 'cfg_options', 'bundle')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('stage', choices=['run', 'plot', 'collect'],
                        help='run the study; plot: tables and PNGs from <out>/extrapolation_study.json; '
                             'collect: that JSON rebuilt from a work dir, then plot')
    parser.add_argument('--out', required=True, help='folder of the JSON, tables and PNGs')
    parser.add_argument('--work-dir', default='work_dirs/extrapolation_study',
                        help="the tools' outputs and checkpoints (collect reads it; checkpoints not needed)")
    parser.add_argument('--models', nargs='+', choices=list(MODELS), default=list(MODELS))
    parser.add_argument('--iters', type=int, help='training iterations per model (600; --tiny: 2)')
    parser.add_argument('--eval-sizes', type=int, nargs='+', help='click-evaluation sizes (1024 2048 4096)')
    parser.add_argument('--score-sizes', type=int, nargs='+', help='attention-score sizes (the eval sizes)')
    parser.add_argument('--score-images', type=int, help='images per size for the attention scores (4)')
    parser.add_argument('--gpu-ids', nargs='+',
                        help='GPUs to use, as CUDA_VISIBLE_DEVICES names them (default: all visible; none: the CPU)')
    parser.add_argument('--jobs-per-device', type=int, default=3, help='concurrent tool runs per device')
    parser.add_argument('--time-limit-s', type=float, help='start no job after this many seconds')
    parser.add_argument('--tiny', action='store_true', help='CPU-sized pipeline check (TINY_OPTIONS)')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed to every tool run')
    parser.add_argument('--bundle', help='at the end, also a .tar.gz of --out and --work-dir without checkpoints')
    args = parser.parse_args(argv)
    if args.stage != 'run':
        given = [a for a in RUN_ONLY if getattr(args, a) != parser.get_default(a)]
        if given:
            option = '--' + given[0].replace('_', '-')
            parser.error(f'{args.stage} takes --out (and, collect, --work-dir) only; got {option}')
        return args
    if args.bundle is not None and not args.bundle.endswith(('.tar.gz', '.tgz')):
        parser.error(f'--bundle must name a .tar.gz or .tgz file, got {args.bundle}')
    defaults = TINY_DEFAULTS if args.tiny else dict(iters=600, eval_sizes=[1024, 2048, 4096], score_images=4)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.score_sizes = args.score_sizes or args.eval_sizes
    if args.iters < 2:
        parser.error('--iters must be >= 2 (the schedule has a warm-up and a decay)')
    if args.score_images < 1 or args.jobs_per_device < 1:
        parser.error('--score-images and --jobs-per-device must be >= 1')
    args.options = (TINY_OPTIONS if args.tiny else []) + list(args.cfg_options)
    args.devices = list(args.gpu_ids) if args.gpu_ids is not None else visible_gpus() or ['cpu']
    if args.tiny and args.devices != ['cpu'] and args.gpu_ids is None:
        args.devices = ['cpu']  # the tiny check is for CPUs; pass --gpu-ids to run it on GPUs
    on_gpu = args.devices != ['cpu']
    args.amp, args.precision = on_gpu, 'bf16' if on_gpu else 'fp32'
    return args


def main(argv=None) -> Optional[dict]:
    args = parse_args(argv)
    if args.stage == 'plot':
        stage_plot(args.out)
        return None
    if args.stage == 'collect':
        return stage_collect(args.work_dir, args.out)
    try:
        result = Study(args).run()
        stage_plot(args.out)
    finally:  # also after an error: what the run finished travels in the one file
        if args.bundle:
            write_bundle(args.bundle, args.out, args.work_dir)
    if result['failed'] or result['skipped']:
        print(f"failed: {result['failed']}\nskipped: {result['skipped']}", flush=True)
        sys.exit(1)
    return result


if __name__ == '__main__':
    main()
