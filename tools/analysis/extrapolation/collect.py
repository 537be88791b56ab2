"""The ``collect`` stage's ``Collector``: ``extrapolation_study.json`` rebuilt from a work dir."""
from __future__ import annotations

import calendar
import glob
import os.path as osp
import re
import shutil
import time
from typing import Dict, List, Optional, Tuple

from .records import evaluation_record, read_json, scores_record, training_record
from .settings import MODELS


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
