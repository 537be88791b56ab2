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

The code is split into the ``extrapolation`` package next to this script (settings, jobs,
records, study, collect, tables, plots, stages); this file is the command line.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))  # run from a checkout, as the other tools
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # the extrapolation package

# The parts, re-exported for tests and for callers that import this script.
from extrapolation.collect import Collector, dumped_config, log_span  # noqa: E402,F401
from extrapolation.jobs import Job, Runner  # noqa: E402,F401
from extrapolation.plots import plot_study  # noqa: E402,F401
from extrapolation.records import (evaluation_record, only, read_json, scores_record,  # noqa: E402,F401
                                   training_record)
from extrapolation.settings import (MODELS, NO_MULTICAST, ROOT, TINY_DEFAULTS, TINY_OPTIONS,  # noqa: E402,F401
                                    WARMUP_ITERS)
from extrapolation.stages import stage_collect, stage_plot, write_bundle  # noqa: E402,F401
from extrapolation.study import Study  # noqa: E402
from extrapolation.tables import attention_table, click_table, markdown_tables, run_notes  # noqa: E402,F401


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
