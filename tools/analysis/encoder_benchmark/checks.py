"""The issue's performance targets and SAM-Lightening's published claims, checked on a run's rows."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from benchmark_common import make_check

from .modes import MODES

MIB = 2 ** 20


def _find(rows: Sequence[Dict], model: str, size: int, mode: str, device: str) -> Optional[Dict]:
    for r in rows:
        if (r['model'], r['size'], r['mode'], r['device'], r['status']) == (model, size, mode, device, 'ok'):
            return r
    return None


def _check(ident: str, what: str, mode: str, value: Optional[float], limit: float, detail: str,
           strict: bool = False) -> Dict:
    return make_check(ident, what, value, limit, detail, strict, mode=mode)  # the mode first, as read here


def target_checks(rows: Sequence[Dict]) -> List[Dict]:
    """The issue's targets, for every mode where the rows they need exist:

    1. FlashSwin (Flash Swin only) at 2048² <= 0.2 x SAM ViT-H at 1024² (CUDA);
    2. HRSAM++ at 2048² <= 1.35 x HRSAM at 2048² (CUDA);
    3. HRSAM time(4096²) / time(2048²) <= 4.5 (CUDA);
    4. HRSAM peak memory at 4096² <= 4 GiB, weights included (CUDA, eager / compile rows);
    5. HRSAM at 1024² under 20 s on CPU (eager).
    """
    checks = []
    for mode in MODES:
        a, b = _find(rows, 'FlashSwin', 2048, mode, 'cuda'), _find(rows, 'SAM-ViT-H', 1024, mode, 'cuda')
        if a and b:
            checks.append(_check('1', 'FlashSwin 2048² <= 0.2 x SAM-ViT-H 1024²', mode, a['ms'] / b['ms'], 0.2,
                                 f"{a['ms']:.2f} ms / {b['ms']:.2f} ms = {a['ms'] / b['ms']:.3f} (<= 0.2)"))
        a, b = _find(rows, 'HRSAM++', 2048, mode, 'cuda'), _find(rows, 'HRSAM', 2048, mode, 'cuda')
        if a and b:
            checks.append(_check('2', 'HRSAM++ 2048² <= 1.35 x HRSAM 2048²', mode, a['ms'] / b['ms'], 1.35,
                                 f"{a['ms']:.2f} ms / {b['ms']:.2f} ms = {a['ms'] / b['ms']:.3f} (<= 1.35)"))
        a, b = _find(rows, 'HRSAM', 4096, mode, 'cuda'), _find(rows, 'HRSAM', 2048, mode, 'cuda')
        if a and b:
            checks.append(_check('3', 'HRSAM time(4096²) / time(2048²) <= 4.5', mode, a['ms'] / b['ms'], 4.5,
                                 f"{a['ms']:.2f} ms / {b['ms']:.2f} ms = {a['ms'] / b['ms']:.3f} (<= 4.5)"))
        a = _find(rows, 'HRSAM', 4096, mode, 'cuda')
        if a and a.get('peak_mib') is not None:
            checks.append(_check('4', 'HRSAM peak memory at 4096² <= 4 GiB (weights included)', mode,
                                 a['peak_mib'] / 1024, 4.0,
                                 f"{a['peak_mib'] / 1024:.3f} GiB = weights {a['weights_mib']:.0f} + input "
                                 f"{a['input_mib']:.0f} + caches {a['cache_mib'] or 0:.0f} + activation peak "
                                 f"{a['act_peak_mib']:.0f} MiB (<= 4 GiB)"))
    a = _find(rows, 'HRSAM', 1024, 'eager', 'cpu')
    if a:
        checks.append(_check('5', 'CPU: HRSAM 1024² under 20 s', 'eager', a['ms'] / 1e3, 20.0,
                             f"{a['ms'] / 1e3:.2f} s (< 20 s)", strict=True))
    return checks


def fast_path_checks(rows: Sequence[Dict]) -> List[Dict]:
    """The default ('fast') path's targets on CUDA:

    F1. HRSAM at 2048² <= 10 ms;
    F2. HRSAM fast at 2048² <= 0.17 x SAM ViT-H at 1024² (its 'fast' row if there is one,
        else its eager row: what segment_anything users run);
    F3. HRSAM++ / HRSAM at 2048² <= 1.25;
    F4. HRSAM 4096² / 2048² <= 4;
    F5. HRSAM peak memory at 4096² < 4 GiB (weights, their bf16 copy and the graph's pool included).
    """
    checks = []
    a = _find(rows, 'HRSAM', 2048, 'fast', 'cuda')
    if a:
        checks.append(_check('F1', 'HRSAM 2048² <= 10 ms', 'fast', a['ms'], 10.0, f"{a['ms']:.2f} ms"))
    h = _find(rows, 'SAM-ViT-H', 1024, 'fast', 'cuda') or _find(rows, 'SAM-ViT-H', 1024, 'eager', 'cuda')
    if a and h:
        checks.append(_check('F2', 'HRSAM 2048² <= 0.17 x SAM-ViT-H 1024²', 'fast', a['ms'] / h['ms'], 0.17,
                             f"{a['ms']:.2f} ms / {h['ms']:.2f} ms (SAM {h['mode']}) = {a['ms'] / h['ms']:.3f}"))
    b = _find(rows, 'HRSAM++', 2048, 'fast', 'cuda')
    if a and b:
        checks.append(_check('F3', 'HRSAM++ 2048² <= 1.25 x HRSAM 2048²', 'fast', b['ms'] / a['ms'], 1.25,
                             f"{b['ms']:.2f} ms / {a['ms']:.2f} ms = {b['ms'] / a['ms']:.3f}"))
    c = _find(rows, 'HRSAM', 4096, 'fast', 'cuda')
    if a and c:
        checks.append(_check('F4', 'HRSAM time(4096²) / time(2048²) <= 4', 'fast', c['ms'] / a['ms'], 4.0,
                             f"{c['ms']:.2f} ms / {a['ms']:.2f} ms = {c['ms'] / a['ms']:.3f}"))
    if c and c.get('peak_mib') is not None:
        checks.append(_check('F5', 'HRSAM peak memory at 4096² < 4 GiB', 'fast', c['peak_mib'] / 1024, 4.0,
                             f"{c['peak_mib'] / 1024:.3f} GiB", strict=True))
    return checks


#: SAM-Lightening's published figures (its abstract): ms per 1024² image, speed-up over SAM
#: ViT-H, memory in MB (10^6 bytes) and as a fraction of SAM's.
LIGHTENING_PAPER = dict(ms=7.0, speedup=30.1, memory_mb=244.0, memory_share=0.035)


def lightening_claims(rows: Sequence[Dict]) -> List[Dict]:
    """SAM-Lightening's published figures against this run's 1024² CUDA rows, per mode:

    L1. its latency <= 7 ms (absolute: depends on the GPU, the paper's is not stated here);
    L2. SAM ViT-H's latency / its latency >= 30.1;
    L3. its memory <= 244 MB: weights, activation peak and total are all listed, since what
        the paper counted is unknown; the check uses the total (eager / compile rows);
    L4. its total memory / SAM ViT-H's <= 3.5 %.
    """
    paper, checks = LIGHTENING_PAPER, []
    for mode in MODES:
        a, h = _find(rows, 'SAM-Lightening', 1024, mode, 'cuda'), _find(rows, 'SAM-ViT-H', 1024, mode, 'cuda')
        if a:
            checks.append(_check('L1', f"SAM-Lightening 1024² <= {paper['ms']:g} ms", mode, a['ms'], paper['ms'],
                                 f"{a['ms']:.2f} ms (paper {paper['ms']:g} ms, on its GPU)"))
        if a and h:
            speedup = h['ms'] / a['ms']
            checks.append(_check('L2', f"SAM-ViT-H / SAM-Lightening at 1024² >= {paper['speedup']:g}x", mode,
                                 1 / speedup, 1 / paper['speedup'],
                                 f"{h['ms']:.2f} ms / {a['ms']:.2f} ms = {speedup:.1f}x (paper {paper['speedup']:g}x)"))
        if a and a.get('peak_mib') is not None:
            mb = lambda mib: mib * MIB / 1e6  # noqa: E731
            checks.append(_check('L3', f"SAM-Lightening memory at 1024² <= {paper['memory_mb']:g} MB", mode,
                                 mb(a['peak_mib']), paper['memory_mb'],
                                 f"weights {mb(a['weights_mib']):.0f} MB, activation peak {mb(a['act_peak_mib']):.0f} "
                                 f"MB, total {mb(a['peak_mib']):.0f} MB (paper {paper['memory_mb']:g} MB, "
                                 'counting unknown)'))
        if a and h and a.get('peak_mib') is not None and h.get('peak_mib') is not None:
            share = a['peak_mib'] / h['peak_mib']
            checks.append(_check('L4', f"SAM-Lightening / SAM-ViT-H memory <= {100 * paper['memory_share']:g} %",
                                 mode, share, paper['memory_share'],
                                 f"total {a['peak_mib']:.0f} / {h['peak_mib']:.0f} MiB = {100 * share:.1f} % "
                                 f"(weights {a['weights_mib']:.0f} / {h['weights_mib']:.0f} MiB)"))
    return checks
