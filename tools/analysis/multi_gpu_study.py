"""Multi-GPU training and evaluation, checked end to end (docs/benchmarks.md, "Two GPUs").

Runs the real tools (``tools/dist_train.sh``, ``tools/dist_test.sh``,
``tools/extract_teacher_embeddings.py``) on the configs of ``configs/multi_gpu/`` and checks
what a user relies on when moving from one GPU to several:

* ``distill``: teacher embeddings of the synthetic scenes from a random-weight SAM ViT-H;
  distillation on N GPUs and on 1 GPU with the same global batch (loss curves must agree:
  both see the same global batches), 1 GPU with the per-GPU batch (throughput scaling);
  an N-GPU run killed (SIGKILL) after its second checkpoint and resumed with ``--resume``,
  compared with the uninterrupted run; every checkpoint reloaded strictly.
* ``click``: click training on N GPUs and on 1 GPU with the same global batch, then the
  click evaluation of the N-GPU checkpoint with ``dist_test.sh`` on 1 and on N GPUs.
* ``plot``: loss curves (PNG) from the JSON the two stages write.

Each stage writes ``<out>/multi_gpu_<stage>.json`` (figures, per-iteration records, the
checks' verdicts). Usage (two GPUs, bf16)::

    python3 tools/analysis/multi_gpu_study.py distill --gpus 2 --work-dir work_dirs/multi_gpu --out OUT
    python3 tools/analysis/multi_gpu_study.py click --gpus 2 --work-dir work_dirs/multi_gpu --out OUT
    python3 tools/analysis/multi_gpu_study.py plot --out OUT

``--cfg-options`` is passed to every training and test run (the test suite uses it to shrink
the model and data for a CPU run with gloo).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import signal
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)  # run from a checkout without installing, as the other tools
DISTILL_CONFIG = 'configs/multi_gpu/hrsam_kv-pad_2xb4_300it_synthetic-sam-distill-1024.py'
CLICK_CONFIG = 'configs/multi_gpu/hrsam_kv-pad_2xb2_200it_synthetic-1024.py'
TEACHER_CONFIG = 'configs/baselines/sam_vit-h.py'
#: NVLink multicast stays off (a program using it can take a shared host's GPUs down).
NO_MULTICAST = dict(NCCL_NVLS_ENABLE='0', TORCH_SYMM_MEM_DISABLE_MULTICAST='1', NVSHMEM_DISABLE_NVLS='1')


class Study:
    """Runs tools as subprocesses under one work dir, each with its own rendezvous port."""

    def __init__(self, work_dir: str, gpus: int, options: List[str], amp: bool):
        self.work_dir, self.gpus, self.options, self.amp = osp.abspath(work_dir), gpus, options, amp
        self.port = 29600 + os.getpid() % 200
        os.makedirs(self.work_dir, exist_ok=True)

    def env(self) -> Dict[str, str]:
        self.port += 1
        path = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
        return dict(os.environ, PORT=str(self.port), PYTHONPATH=path, **NO_MULTICAST)

    def command(self, script: str, config: str, gpus: int, work_dir: str, extra: List[str],
                checkpoint: Optional[str] = None) -> List[str]:
        args = ['bash', f'tools/{script}', config] + ([checkpoint] if checkpoint else []) + [str(gpus)]
        args += ['--work-dir', work_dir] + (['--amp'] if self.amp and script == 'dist_train.sh' else [])
        options = self.options + extra
        return args + (['--cfg-options'] + options if options else [])

    def run(self, args: List[str], log_name: str) -> float:
        """Run to completion; the log goes to ``<work_dir>/<log_name>.log``. Returns seconds."""
        start = time.perf_counter()
        with open(osp.join(self.work_dir, f'{log_name}.log'), 'w') as log:
            proc = subprocess.run(args, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise RuntimeError(f'{" ".join(args)} failed ({proc.returncode}); see {log.name}')
        return time.perf_counter() - start

    def train(self, config: str, gpus: int, name: str, batch: Optional[int] = None, extra=()) -> str:
        work_dir = osp.join(self.work_dir, name)
        options = ([f'train_dataloader.batch_size={batch}'] if batch else []) + list(extra)
        seconds = self.run(self.command('dist_train.sh', config, gpus, work_dir, options), name)
        print(f'{name}: trained in {seconds:.0f} s', flush=True)
        return work_dir

    def train_killed(self, config: str, gpus: int, name: str, batch: int, kill_after: str) -> str:
        """Start training, SIGKILL the whole process group once ``kill_after`` is the last checkpoint."""
        work_dir = osp.join(self.work_dir, name)
        args = self.command('dist_train.sh', config, gpus, work_dir, [f'train_dataloader.batch_size={batch}'])
        marker = osp.join(work_dir, 'last_checkpoint')
        with open(osp.join(self.work_dir, f'{name}_killed.log'), 'w') as log:
            proc = subprocess.Popen(args, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            while proc.poll() is None:
                if osp.isfile(marker) and open(marker).read().strip().endswith(kill_after):
                    time.sleep(2.0)  # a few more iterations, so work after the checkpoint is lost
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    break
                time.sleep(0.2)
        if proc.returncode is None or proc.returncode >= 0:
            raise RuntimeError(f'{name}: the run ended ({proc.returncode}) before {kill_after} was written')
        print(f'{name}: killed after {kill_after}', flush=True)
        return work_dir


# ---------------------------------------------------------------------- checks
def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def checkpoint_files(work_dir: str) -> Dict[str, int]:
    return {f: os.path.getsize(osp.join(work_dir, f)) for f in sorted(os.listdir(work_dir)) if f.endswith('.pth')}


def replicas_identical(work_dir: str, gpus: int) -> dict:
    """ParamSyncCheckHook's per-rank checksum files: equal on every rank at every recorded iteration."""
    ranks = [read_json(osp.join(work_dir, f'param_checksums_rank{r}.json')) for r in range(gpus)]
    return dict(iterations=[it for it, _ in ranks[0]], identical=all(r == ranks[0] for r in ranks))


def compare_weights(path_a: str, path_b: str) -> dict:
    """Largest absolute difference of every parameter of two checkpoints."""
    import torch
    a = torch.load(path_a, map_location='cpu', weights_only=False)['state_dict']
    b = torch.load(path_b, map_location='cpu', weights_only=False)['state_dict']
    if a.keys() != b.keys():
        raise RuntimeError(f'{path_a} and {path_b} hold different keys')
    diffs = {k: float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel()}
    scale = max(float(v.double().abs().max()) for v in a.values() if v.numel())
    return dict(identical_tensors=sum(d == 0 for d in diffs.values()), tensors=len(diffs),
                max_abs_diff=max(diffs.values()), max_abs_value=scale,
                worst=sorted(diffs, key=diffs.get)[-3:])


def reload_strictly(config: str, path: str, options: List[str]) -> int:
    """Build the config's model and load the checkpoint with strict key matching; returns #tensors."""
    import torch
    from mmengine.config import Config, DictAction
    from mmengine.registry import init_default_scope

    import mmhrsam  # noqa: F401  (registers the models)
    from mmhrsam.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    if options:
        parsed = argparse.Namespace()
        DictAction(option_strings=[], dest='opts')(None, parsed, options)
        cfg.merge_from_dict(parsed.opts)
    init_default_scope('mmhrsam')
    model = MODELS.build(cfg.model)
    # A training checkpoint of our own run (message-hub objects need the full unpickler).
    state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    model.load_state_dict(state, strict=True)
    return len(state)


def run_record(work_dir: str) -> dict:
    return read_json(osp.join(work_dir, 'iteration_record.json'))


def throughput(record: dict, warmup: int = 20, slow_s: float = 0.5) -> dict:
    """Images per second of one run from its per-iteration clock readings.

    ``wall``: over all iterations after ``warmup``, checkpoint writes included; ``steady``:
    the global batch over the median iteration interval; ``slow_steps``: intervals longer
    than ``slow_s`` (checkpoint writes) with their seconds.
    """
    times, its = record['time_s'][warmup - 1:], record['iterations'][warmup - 1:]
    steps = [b - a for a, b in zip(times, times[1:])]
    batch = record['world_size'] * record['batch_size_per_rank']
    median = statistics.median(steps)
    return dict(wall=batch * len(steps) / (times[-1] - times[0]), steady=batch / median, median_step_s=median,
                slow_steps={it: round(s, 3) for it, s in zip(its[1:], steps) if s > slow_s})


def curve_agreement(a: dict, b: dict, tail: int = 50) -> dict:
    """Gap between two per-iteration loss curves on the iterations both recorded."""
    la, lb = dict(zip(a['iterations'], a['loss'])), dict(zip(b['iterations'], b['loss']))
    common = sorted(set(la) & set(lb))
    rel = [abs(la[i] - lb[i]) / max(abs(lb[i]), 1e-12) for i in common]
    last = common[-tail:]
    return dict(iterations=len(common), mean_rel_gap=sum(rel) / len(rel), max_rel_gap=max(rel),
                first_loss=[la[common[0]], lb[common[0]]],
                tail_mean_loss=[sum(la[i] for i in last) / len(last), sum(lb[i] for i in last) / len(last)])


def last_checkpoint(work_dir: str) -> str:
    return max(checkpoint_files(work_dir), key=lambda f: int(f[len('iter_'):-len('.pth')]))


# ---------------------------------------------------------------------- stages
def stage_distill(study: Study, args) -> dict:
    n, batch = study.gpus, args.batch
    extract = [sys.executable, 'tools/extract_teacher_embeddings.py', DISTILL_CONFIG, '--teacher', args.teacher,
               '--out', args.embedding_dir, '--batch-size', '8', '--num-workers', str(args.workers),
               '--device', 'cuda' if args.amp else 'cpu']
    extract += ['--cfg-options'] + study.options if study.options else []
    result = dict(extract_s=study.run(extract, 'extract'))
    multi = study.train(DISTILL_CONFIG, n, f'distill_{n}gpu', batch)
    single = study.train(DISTILL_CONFIG, 1, 'distill_1gpu_same-global-batch', batch * n)
    weak = study.train(DISTILL_CONFIG, 1, 'distill_1gpu_same-per-gpu-batch', batch,
                       extra=[f'train_cfg.max_iters={args.throughput_iters}'])
    killed = study.train_killed(DISTILL_CONFIG, n, f'distill_{n}gpu_killed-and-resumed', batch,
                                args.kill_after)
    before_resume = checkpoint_files(killed)
    study.run(study.command('dist_train.sh', DISTILL_CONFIG, n, killed, [f'train_dataloader.batch_size={batch}'])
              + ['--resume'], 'distill_resume')
    records = dict(multi=run_record(multi), single_same_global=run_record(single),
                   single_same_per_gpu=run_record(weak), resumed=run_record(killed))
    last = last_checkpoint(multi)
    rates = {k: throughput(v) for k, v in records.items()}
    result.update(
        gpus=n, batch_per_gpu=batch, records=records,
        loss_agreement=curve_agreement(records['multi'], records['single_same_global']),
        throughput=rates,
        scaling={k: rates['multi'][k] / rates['single_same_per_gpu'][k] for k in ('steady', 'wall')},
        replicas=replicas_identical(multi, n), replicas_resumed=replicas_identical(killed, n),
        checkpoints=checkpoint_files(multi), checkpoints_at_kill=before_resume,
        resumed_vs_uninterrupted=compare_weights(osp.join(multi, last), osp.join(killed, last)),
        before_kill_vs_uninterrupted=compare_weights(osp.join(multi, args.kill_after),
                                                     osp.join(killed, args.kill_after)),
        reloaded_tensors=reload_strictly(DISTILL_CONFIG, osp.join(multi, last), study.options))
    return result


def test_summary(work_dir: str) -> dict:
    (run_dir, ) = [d for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d))]
    return read_json(osp.join(work_dir, run_dir, 'summary.json'))


def stage_click(study: Study, args) -> dict:
    n, batch = study.gpus, args.batch
    multi = study.train(CLICK_CONFIG, n, f'click_{n}gpu', batch)
    single = study.train(CLICK_CONFIG, 1, 'click_1gpu_same-global-batch', batch * n)
    ckpt = osp.join(multi, last_checkpoint(multi))
    tests = {}
    for gpus in (1, n):
        work_dir = osp.join(study.work_dir, f'click_test_{gpus}gpu')
        seconds = study.run(study.command('dist_test.sh', CLICK_CONFIG, gpus, work_dir, [], checkpoint=ckpt),
                            f'click_test_{gpus}gpu')
        tests[f'{gpus}gpu'] = dict(summary=test_summary(work_dir), wall_s=seconds)
    strip = lambda m: {k: v for k, v in m['summary']['metrics'].items() if 'SPC' not in k}  # noqa: E731
    records = dict(multi=run_record(multi), single_same_global=run_record(single))
    return dict(gpus=n, batch_per_gpu=batch, records=records, tests=tests,
                metrics_identical=strip(tests['1gpu']) == strip(tests[f'{n}gpu']),
                loss_agreement=curve_agreement(records['multi'], records['single_same_global']),
                throughput={k: throughput(v) for k, v in records.items()},
                replicas=replicas_identical(multi, n), checkpoints=checkpoint_files(multi))


def smooth(values: List[float], window: int) -> List[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def stage_plot(args) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    for stage, title in (('distill', 'distillation, MSE to SAM ViT-H embeddings'),
                         ('click', 'click training, normalized focal loss')):
        path = osp.join(args.out, f'multi_gpu_{stage}.json')
        if not osp.isfile(path):
            continue
        data = read_json(path)
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
        labels = dict(multi=f'{data["gpus"]} GPUs x {data["batch_per_gpu"]}',
                      single_same_global=f'1 GPU x {data["batch_per_gpu"] * data["gpus"]}',
                      resumed=f'{data["gpus"]} GPUs, killed and resumed')
        for key, label in labels.items():
            rec = data['records'].get(key)
            if rec:
                ax.plot(rec['iterations'], smooth(rec['loss'], args.smooth), label=label, lw=1.2,
                        ls='--' if key == 'resumed' else '-')
        ax.set(xlabel='iteration', ylabel=f'loss (mean of all ranks, {args.smooth}-iteration average)',
               title=title)
        ax.set_yscale('log')
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(osp.join(args.out, f'multi_gpu_{stage}_loss.png'))
        plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('stage', choices=['distill', 'click', 'plot'])
    parser.add_argument('--gpus', type=int, default=2, help='processes of the multi-GPU runs')
    parser.add_argument('--batch', type=int, default=None, help='images per GPU (default: the config\'s)')
    parser.add_argument('--work-dir', default='work_dirs/multi_gpu')
    parser.add_argument('--out', default='work_dirs/multi_gpu', help='where the JSON / PNG go')
    parser.add_argument('--embedding-dir', default='data/synthetic_sam_vit-h_embeddings',
                        help="the distillation config's embedding_dir")
    parser.add_argument('--teacher', default=TEACHER_CONFIG, help='teacher config (random weights)')
    parser.add_argument('--workers', type=int, default=8, help='extraction dataloader workers')
    parser.add_argument('--throughput-iters', type=int, default=100, help='iterations of the 1-GPU throughput run')
    parser.add_argument('--kill-after', default='iter_200.pth', help='checkpoint after which the run is killed')
    parser.add_argument('--no-amp', dest='amp', action='store_false', help='fp32 (CPU runs)')
    parser.add_argument('--smooth', type=int, default=10, help='plot: moving-average window')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed to every run')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.stage == 'plot':
        return stage_plot(args)
    if args.batch is None:
        args.batch = 4 if args.stage == 'distill' else 2
    study = Study(args.work_dir, args.gpus, list(args.cfg_options), args.amp)
    result = (stage_distill if args.stage == 'distill' else stage_click)(study, args)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, f'multi_gpu_{args.stage}.json'), 'w') as f:
        json.dump(result, f, indent=1)
    summary = {k: v for k, v in result.items() if k not in ('records', 'tests')}
    print(json.dumps(summary, indent=1))


if __name__ == '__main__':
    main()
