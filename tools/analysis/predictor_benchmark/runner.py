"""One case of the run: build its session, warm up, time the images, profile; its JSON row."""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Dict, List

import numpy as np
import torch
from encoder_benchmark.measure import error_text, free_memory

from mmhrsam.utils.benchmark import sync

from .hrsam_session import HRSAMSession
from .planning import Case, click_sequence
from .predictors import PREDICTORS
from .sam_sessions import Sam2Session, SamSession
from .session import Session
from .timing import click_pass, device_ms, summarize, timed

MIB = 2 ** 20


def build_session(case: Case, args: argparse.Namespace, device: torch.device) -> Session:
    """The session driving ``case``'s predictor, by its family."""
    family, ref = PREDICTORS[case.model]
    if family == 'hrsam':
        return HRSAMSession(ref, case.size, args, device)
    if family == 'sam':
        return SamSession(ref, case.size, case.precision, args, device)
    return Sam2Session(ref, case.precision, device)


def base_row(case: Case, args: argparse.Namespace, device: torch.device) -> Dict:
    """``case``'s row with every key, nothing measured yet."""
    return dict(model=case.model, family=PREDICTORS[case.model][0], size=case.size, embed_grid=case.size // 16,
                image='x'.join(map(str, args.image_size)), device=device.type, variant=case.precision,
                precision=case.precision, options=None, status='ok', reason='', build_s=None,
                first_set_image_ms=None, first_predict_ms=None, set_image_ms=None, set_image_ms_all=None, predict={},
                gpu_kernel_ms=None, gpu_copy_ms=None, gpu_kernel_output=None, gpu_profile_error=None,
                weights_mib=None, peak_mib=None)


def run_case(case: Case, args: argparse.Namespace, device: torch.device, images: List[np.ndarray]) -> Dict:
    """Build, warm up on ``images[0]``, time ``images[1:]``; an exception becomes an error row."""
    row = base_row(case, args, device)
    if case.skip:
        row.update(status='skipped', reason=case.skip)
        return row
    session = None
    try:
        before = torch.cuda.memory_allocated(device) if device.type == 'cuda' else 0
        t0 = time.perf_counter()
        session = build_session(case, args, device)
        sync(device)
        row.update(build_s=round(time.perf_counter() - t0, 2), precision=session.info['precision'],
                   options=session.info['options'])
        if device.type == 'cuda':
            row['weights_mib'] = round((torch.cuda.memory_allocated(device) - before) / MIB, 1)
        measure(session, row, args, device, images)
    except Exception as exc:  # noqa: BLE001  (OOM, missing option, build error: record, go on)
        row.update(status='error', reason=error_text(exc))
    finally:
        del session
        free_memory(device)
    return row


def measure(session: Session, row: Dict, args: argparse.Namespace, device: torch.device,
            images: List[np.ndarray]) -> None:
    """The protocol of the command line's documentation, filling ``row``."""
    width, height = args.image_size
    points, labels = click_sequence(args.clicks, width, height)
    outputs = [o for o in args.outputs if not session.outputs[o]]
    if not outputs:
        raise ValueError(f'none of --outputs {args.outputs} is available: {session.outputs}')
    _, first_set_ms, _ = timed(lambda: session.set_image(images[0]), device)
    row['first_predict_ms'] = {}
    for output in outputs:  # warm-up passes (compilation, graph capture, caches)
        row['first_predict_ms'][output] = round(click_pass(session, points, labels, output, device)[0][0], 4)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    set_ms, walls, spans = [], {o: [] for o in outputs}, {o: [] for o in outputs}
    for image in images[1:]:
        set_ms.append(timed(lambda: session.set_image(image), device)[1])
        for output in outputs:
            w, s = click_pass(session, points, labels, output, device)
            walls[output].append(w)
            spans[output].append(s)
    row.update(first_set_image_ms=round(first_set_ms, 4), set_image_ms=round(statistics.median(set_ms), 4),
               set_image_ms_all=[round(t, 4) for t in set_ms])
    row['predict'] = {o: summarize(walls[o], spans[o], set_ms) if o in outputs else
                      dict(status='skipped', reason=session.outputs[o]) for o in args.outputs}
    if device.type == 'cuda':
        row['peak_mib'] = round(torch.cuda.max_memory_allocated(device) / MIB, 1)
        if not args.no_profile:
            profile_clicks(session, row, args, device, points, labels, outputs)


def profile_clicks(session: Session, row: Dict, args: argparse.Namespace, device: torch.device,
                   points: np.ndarray, labels: np.ndarray, outputs: List[str]) -> None:
    """Device time per click of one more pass (tensor output where available) into ``row``."""
    output = 'tensor' if 'tensor' in outputs else outputs[0]
    row['gpu_kernel_output'] = output
    try:  # a profiler failure (e.g. no CUPTI) must not cost the case its timings
        totals = device_ms(lambda: click_pass(session, points, labels, output, device), device)
    except Exception as exc:  # noqa: BLE001
        totals, row['gpu_profile_error'] = None, error_text(exc)
    if totals is not None:
        row.update(gpu_kernel_ms=round(totals['kernels'] / args.clicks, 4),
                   gpu_copy_ms=round(totals['copies'] / args.clicks, 4))
