"""Printed tables and the JSON file of a run."""
from __future__ import annotations

import argparse
import sys
from typing import Dict, Sequence

import torch
from benchmark_common import dump_json, fmt_cell, format_checks  # noqa: F401  (format_checks re-exported)

from mmhrsam.ops.attention import ATTENTION_BACKENDS
from mmhrsam.ops.selective_scan import resolve_scan_backend

from .breakdown import BREAKDOWN_PARTS, COVERAGE_TOLERANCE
from .checks import lightening_claims, target_checks
from .encoders import ENCODERS
from .measure import error_text
from .modes import MODES


def format_table(rows: Sequence[Dict]) -> str:
    head = (f"{'model':<14} {'image':>9} {'mode':<9} {'status':<7} {'ms':>10} {'min ms':>10} {'n':>3} "
            f"{'wts MiB':>8} {'act MiB':>9} {'peak MiB':>9}  note")
    lines = [head, '-' * len(head)]
    for r in rows:
        note = r['reason'] or (f"compile {r['compile_s']:.0f} s" if r.get('compile_s') else '')
        if r['mode'] == 'breakdown' and r['status'] == 'ok':
            note = f"hooked total; unhooked {r['unhooked_ms']:.3f} ms"
        lines.append(f"{r['model']:<14} {r['image']:>9} {r['mode']:<9} {r['status']:<7} {fmt_cell(r['ms'], '.3f', 10)} "
                     f"{fmt_cell(r['ms_min'], '.3f', 10)} {r['repeats']:>3} {fmt_cell(r['weights_mib'], '.0f', 8)} "
                     f"{fmt_cell(r['act_peak_mib'], '.0f', 9)} "
                     f"{fmt_cell(r['peak_mib'], '.0f', 9)}  {note}")
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


def environment(args: argparse.Namespace, device: torch.device) -> Dict:
    """Versions, device, resolved backends and arguments of this run (the JSON's ``env``)."""
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
    """The JSON file: ``env``, ``results`` (one row per case), ``targets`` and ``claims``."""
    dump_json(path, dict(env=env, results=list(rows), targets=target_checks(rows), claims=lightening_claims(rows)))
