"""Reading the tools' outputs into the study's records (shared by ``run`` and ``collect``)."""
from __future__ import annotations

import csv
import glob
import json
import os.path as osp
from typing import Optional


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
