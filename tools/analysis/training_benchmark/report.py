"""Failures and the time limit recorded as rows; one printed line (and profile) per result."""
from __future__ import annotations

from typing import Callable, Dict, Sequence

import torch

from .measure import Clock


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
