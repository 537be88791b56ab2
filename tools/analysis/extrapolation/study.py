"""The ``run`` stage: the jobs of one run (train, evaluate, attention scores) and their JSON."""
from __future__ import annotations

import os
import os.path as osp
import shutil
import threading
import time
from typing import List

from benchmark_common import dump_json

from .jobs import Job, Runner
from .records import evaluation_record, only, scores_record, training_record
from .settings import MODELS, WARMUP_ITERS


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
        with self.lock:
            dump_json(osp.join(self.out, 'extrapolation_study.json'), self.result)

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
