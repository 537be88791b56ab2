"""What a run prints and writes: the results table, the checks, the environment, the JSON file."""
from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Dict, Sequence

import torch
from benchmark_common import dump_json, fmt_cell, format_checks  # noqa: F401  (format_checks re-exported)

from .checks import comparisons, predict_stats, target_checks
from .predictors import SAM_PRECISIONS, hrsam_predictor_options, sam2_available


def format_table(rows: Sequence[Dict], clicks: int = 20) -> str:
    """One line per row: set_image, per-click medians / p90s per output kind, SPC, memory."""
    head = (f"{'model':<10} {'size':>5} {'status':<7} {'1st set':>8} {'set ms':>8} {'np med':>7} {'np p90':>7} "
            f"{'gpu med':>7} {'gpu p90':>7} {'GPU/clk':>7} {'SPC np':>7} {'SPC gpu':>7} {'peak MiB':>8}  "
            'precision / note')
    lines = [f'{clicks}-SPC = (set_image + {clicks} clicks) / {clicks}; np: NumPy mask output, gpu: tensor '
             'output; GPU/clk: profiled device ms per click; ms unless noted', head, '-' * len(head)]
    for r in rows:
        num, ten = predict_stats(r, 'numpy') or {}, predict_stats(r, 'tensor') or {}
        note = r['reason'] or r['precision']
        lines.append(f"{r['model']:<10} {r['size']:>5} {r['status']:<7} {fmt_cell(r['first_set_image_ms'], '.1f', 8)} "
                     f"{fmt_cell(r['set_image_ms'], '.2f', 8)} {fmt_cell(num.get('median_ms'), '.2f', 7)} "
                     f"{fmt_cell(num.get('p90_ms'), '.2f', 7)} {fmt_cell(ten.get('median_ms'), '.2f', 7)} "
                     f"{fmt_cell(ten.get('p90_ms'), '.2f', 7)} {fmt_cell(r['gpu_kernel_ms'], '.3f', 7)} "
                     f"{fmt_cell(num.get('spc_ms'), '.2f', 7)} {fmt_cell(ten.get('spc_ms'), '.2f', 7)} "
                     f"{fmt_cell(r['peak_mib'], '.0f', 8)}  {note}")
    return '\n'.join(lines)


def environment(args: argparse.Namespace, device: torch.device) -> Dict:
    """The ``env`` part of the JSON: versions, device, predictor options, the arguments."""
    sam2_version = None
    if sam2_available():
        from importlib.metadata import PackageNotFoundError, version
        with contextlib.suppress(PackageNotFoundError):
            sam2_version = version('SAM-2')
    return dict(torch=torch.__version__, device_name=torch.cuda.get_device_name(device) if device.type == 'cuda'
                else 'cpu', threads=torch.get_num_threads(), command=' '.join(sys.argv),
                hrsam_predictor_options=hrsam_predictor_options(), sam2_installed=sam2_available(),
                sam2_version=sam2_version, baseline_precision=SAM_PRECISIONS, tiny=args.tiny, args=vars(args))


def write_json(path: str, env: Dict, rows: Sequence[Dict], clicks: int) -> None:
    """The JSON file: ``env``, ``results`` (the rows), ``targets`` and ``comparisons``."""
    dump_json(path, dict(env=env, results=list(rows), targets=target_checks(rows, clicks),
                         comparisons=comparisons(rows, clicks)))
