"""The issue's user-level targets (PASS / MISS) and the SPC comparisons, on a run's rows."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from benchmark_common import make_check

OUTPUTS = ('numpy', 'tensor')


def _find(rows: Sequence[Dict], model: str, size: int, device: str = 'cuda', fp32: bool = False) -> Optional[Dict]:
    for r in rows:
        if (r['model'], r['size'], r['device'], r['status']) == (model, size, device, 'ok') \
                and (r['variant'] == 'fp32') == fp32:
            return r
    return None


def predict_stats(row: Optional[Dict], output: str) -> Optional[Dict]:
    """``row``'s per-click statistics of ``output`` (numpy / tensor), or None where not measured."""
    if row is None or row['predict'].get(output, {}).get('status') != 'ok':
        return None
    return row['predict'][output]


def target_checks(rows: Sequence[Dict], clicks: int = 20) -> List[Dict]:
    """The issue's user-level targets where this run has the rows (CUDA):

    1. {clicks}-SPC: HRSAM 2048 <= 0.2 x SamPredictor ViT-H 1024 (per output kind, both rows
       of that kind; the SAM row with bf16 set_image);
    2. HRSAM 2048 ``predict`` median <= 2 ms wall per click with tensor output;
    3. ... <= 4 ms with NumPy output (the image's size is in the detail);
    4. HRSAM 2048 (128² embedding) click path <= 1 ms of GPU time (profiler device time);
    5. HRSAM 2048 ``set_image`` (preprocessing of the image included) <= 10 ms;
    6. HRSAM 4096 peak memory through the predictor < 4 GiB (weights, image, clicks included).
    """
    checks, spc = [], f'{clicks}-SPC'
    hrsam, sam_h = _find(rows, 'HRSAM', 2048), _find(rows, 'SAM-ViT-H', 1024)
    for output in OUTPUTS:
        a, b = predict_stats(hrsam, output), predict_stats(sam_h, output)
        if a and b:
            ratio = a['spc_ms'] / b['spc_ms']
            checks.append(make_check('1', f'{spc} HRSAM 2048 <= 0.2 x SamPredictor ViT-H 1024 [{output}]', ratio,
                                     0.2, f"{a['spc_ms']:.2f} ms / {b['spc_ms']:.2f} ms = {ratio:.3f} (<= 0.2)"))
    for ident, output, limit in (('2', 'tensor', 2.0), ('3', 'numpy', 4.0)):
        a = predict_stats(hrsam, output)
        if a:
            checks.append(make_check(ident, f'HRSAM 2048 predict <= {limit:g} ms wall per click [{output}]',
                                     a['median_ms'], limit,
                                     f"median {a['median_ms']:.2f} ms, p90 {a['p90_ms']:.2f} ms, "
                                     f"image {hrsam['image']} (<= {limit:g} ms)"))
    if hrsam and hrsam.get('gpu_kernel_ms') is not None:
        checks.append(make_check('4', 'HRSAM 2048 (128² embedding) click path <= 1 ms GPU time',
                                 hrsam['gpu_kernel_ms'], 1.0, f"{hrsam['gpu_kernel_ms']:.3f} ms of kernels per click, "
                                 f"copies apart ({hrsam.get('gpu_copy_ms') or 0:.3f} ms) "
                                 f"[{hrsam['gpu_kernel_output']} output] (<= 1 ms)"))
    if hrsam:
        checks.append(make_check('5', 'HRSAM 2048 set_image <= 10 ms', hrsam['set_image_ms'], 10.0,
                                 f"median {hrsam['set_image_ms']:.2f} ms on a {hrsam['image']} image, "
                                 f"precision {hrsam['precision']} (<= 10 ms)"))
    big = _find(rows, 'HRSAM', 4096)
    if big and big.get('peak_mib') is not None:
        gib = big['peak_mib'] / 1024
        checks.append(make_check('6', 'HRSAM 4096 predictor peak memory < 4 GiB', gib, 4.0,
                                 f"{gib:.3f} GiB max allocated (weights {big['weights_mib']:.0f} MiB) (< 4 GiB)",
                                 strict=True))
    return checks


def comparisons(rows: Sequence[Dict], clicks: int = 20) -> List[str]:
    """Ratios beside the checks: every ok row's SPC against SamPredictor ViT-H 1024's (numpy)."""
    base = predict_stats(_find(rows, 'SAM-ViT-H', 1024), 'numpy')
    if base is None:
        return []
    lines = []
    for r in rows:
        a = predict_stats(r, 'numpy')
        if a and r['device'] == 'cuda':
            lines.append(f"{clicks}-SPC {r['model']} {r['size']} ({r['precision']}) / SAM-ViT-H 1024: "
                         f"{a['spc_ms']:.2f} / {base['spc_ms']:.2f} ms = {a['spc_ms'] / base['spc_ms']:.3f}")
    return lines
