"""Interactive-segmentation metrics (docs/evaluation_protocol.md): NoC, NoF, mIoU-vs-clicks, SPC.

Definitions, for an (N, K) array of IoUs after clicks 1..K and a click budget
``max_clicks`` (20 in the paper's protocol, docs/evaluation_protocol.md):

* ``NoC@t`` (t as ``round(100 t)``, e.g. ``NoC@90``): mean over instances of the first
  1-based click index within the budget whose IoU >= t; ``max_clicks`` when none does.
  Only the first ``min(K, max_clicks)`` clicks are looked at, so with ``K < max_clicks``
  an instance that never reaches t within its K clicks still counts ``max_clicks``.
* ``NoF@t``: number of instances that never reach t within the budget; reported for the
  thresholds >= 0.9 (``NoF@90``, ``NoF@95`` by default).
* ``mIoU@k``: mean IoU after k clicks, k = 1..K; ``5-mIoU`` is ``mIoU@5``.
* ``20-SPC`` (ms): per instance ``(encoder_time + sum of the first 20 decoder_times) / 20``,
  averaged over instances; the test loop records no time for its warm-up runs. In
  general the key is ``{max_clicks}-SPC`` and an instance with fewer decoder times
  than ``max_clicks`` divides by the number it has.
"""
from __future__ import annotations

import csv
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmengine.dist import get_rank, is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmhrsam.registry import METRICS


def _key(threshold: float) -> str:
    """Metric-name suffix of a threshold: 0.9 -> '90'."""
    return str(int(round(100 * threshold)))


def _check_ious(ious: Any) -> np.ndarray:
    """``ious`` as a float64 (N, K) array with N, K >= 1 and values in [0, 1]."""
    ious = np.asarray(ious, dtype=np.float64)
    if ious.ndim != 2:
        raise ValueError(f'ious must be an (N, K) array, got shape {ious.shape}')
    if ious.shape[0] < 1 or ious.shape[1] < 1:
        raise ValueError(f'ious needs at least one instance and one click, got shape {ious.shape}')
    if not np.all((ious >= 0) & (ious <= 1)):  # also rejects NaN
        raise ValueError('ious must lie in [0, 1] (NaN not allowed)')
    return ious


def noc_per_instance(ious: Any, threshold: float, max_clicks: int = 20) -> np.ndarray:
    """Number of clicks each instance needs to reach ``threshold``.

    Args:
        ious (array-like): (N, K) IoU after clicks 1..K.
        threshold (float): IoU to reach (>=).
        max_clicks (int): click budget; the value for instances that never reach it.

    Returns:
        np.ndarray: int64 (N,), values in 1..max_clicks.
    """
    ious = _check_ious(ious)[:, :max_clicks]
    reached = ious >= threshold
    first = reached.argmax(axis=1) + 1  # argmax: first True (1-based below)
    return np.where(reached.any(axis=1), first, max_clicks).astype(np.int64)


def noc_metrics(ious: Any, thresholds: Sequence[float] = (0.85, 0.9, 0.95),
                max_clicks: int = 20) -> Dict[str, float]:
    """NoC, NoF and mIoU-after-k-clicks, see the module docstring.

    Args:
        ious (array-like): (N, K) IoU after clicks 1..K, values in [0, 1].
        thresholds (Sequence[float]): NoC thresholds; NoF for those >= 0.9.
        max_clicks (int): click budget. Defaults to 20.

    Returns:
        Dict[str, float]: ``NoC@85`` ... (float), ``NoF@90`` ... (int), ``mIoU@1`` ...
        ``mIoU@K`` (float).

    Raises:
        ValueError: when ``ious`` is not 2-D, is empty or has values outside [0, 1].
    """
    ious = _check_ious(ious)
    if max_clicks < 1:
        raise ValueError(f'max_clicks must be >= 1, got {max_clicks}')
    metrics: Dict[str, float] = {}
    for t in thresholds:
        metrics[f'NoC@{_key(t)}'] = float(noc_per_instance(ious, t, max_clicks).mean())
    for t in thresholds:
        if t >= 0.9:
            reached = (ious[:, :max_clicks] >= t).any(axis=1)
            metrics[f'NoF@{_key(t)}'] = int((~reached).sum())
    for k, value in enumerate(ious.mean(axis=0), start=1):
        metrics[f'mIoU@{k}'] = float(value)
    return metrics


def _get(sample: Any, key: str, default: Any = None) -> Any:
    """A field of an InteractiveDataSample or of a dict (top level or its 'metainfo')."""
    if isinstance(sample, dict):
        if key in sample:
            return sample[key]
        return sample.get('metainfo', {}).get(key, default)
    return sample.get(key, default)  # BaseDataElement.get sees data and meta fields


def _to_numpy(value: Any, dtype: type) -> Optional[np.ndarray]:
    """Tensor / list / array -> CPU numpy array of ``dtype`` (None stays None)."""
    if value is None:
        return None
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _stack_ious(results: List[dict]) -> np.ndarray:
    """(N, K) IoUs; shorter sequences (a loop that stopped early) repeat their last IoU."""
    k = max(len(r['ious']) for r in results)
    return np.stack([np.pad(r['ious'], (0, k - len(r['ious'])), mode='edge') for r in results])


@METRICS.register_module()
class ClickMetric(BaseMetric):
    """NoC / NoF / mIoU / SPC of the click protocol, with optional files.

    Each processed sample (an ``InteractiveDataSample`` or a dict) provides ``ious``
    (K,), optionally ``clicks`` (K, 3), ``encoder_time`` (s), ``decoder_times`` (K,) (s),
    and metainfo ``img_id`` / ``instance_id``. Results are kept as plain numpy / Python
    objects so that MMEngine can pickle and gather them to rank 0; ``compute_metrics``
    only runs there (``BaseMetric.evaluate``), and files are written there only.

    Args:
        thresholds (Sequence[float]): NoC thresholds. Defaults to (0.85, 0.9, 0.95).
        max_clicks (int): click budget. Defaults to 20.
        miou_at (Sequence[int]): the k of the ``mIoU@k`` returned (logged); the JSON has
            every k. Defaults to (1, 5, 10, 20).
        output_dir (str, optional): where to write ``summary.json``, ``per_instance.csv``
            and ``miou_vs_clicks.png``. Defaults to None (no files).
        prefix (str): metric-name prefix. Defaults to 'click'.
        collect_device (str): 'cpu' or 'gpu', for gathering results. Defaults to 'cpu'.
        size_bins (Sequence[int], optional): upper edges of bins of the original image's long
            side, e.g. (1024, 2048, 3072, 4096) for the bins (0, 1024], (1024, 2048], ... of
            the paper's Table 2; the metrics of each non-empty bin go to the log and to
            ``by_size`` in ``summary.json`` (instances need metainfo ``ori_shape``).
    """

    default_prefix = 'click'

    def __init__(self, thresholds: Sequence[float] = (0.85, 0.9, 0.95), max_clicks: int = 20,
                 miou_at: Sequence[int] = (1, 5, 10, 20), output_dir: Optional[str] = None,
                 prefix: str = 'click', collect_device: str = 'cpu',
                 size_bins: Optional[Sequence[int]] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.size_bins = tuple(int(v) for v in size_bins) if size_bins else ()
        if list(self.size_bins) != sorted(set(self.size_bins)):
            raise ValueError(f'size_bins must be increasing, got {size_bins}')
        self.thresholds = tuple(float(t) for t in thresholds)
        self.max_clicks = int(max_clicks)
        self.miou_at = tuple(int(k) for k in miou_at)
        self.output_dir = output_dir

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep the per-instance IoUs, clicks and timings of a batch.

        Args:
            data_batch (Any): the dataloader batch (unused).
            data_samples (Sequence[Any]): model outputs, InteractiveDataSample or dict.
        """
        for sample in data_samples:
            ious = _to_numpy(_get(sample, 'ious'), np.float64)
            if ious is None:
                raise KeyError('ClickMetric needs an `ious` field in every data sample')
            encoder_time = _get(sample, 'encoder_time')
            ori_shape = _get(sample, 'ori_shape')
            self.results.append(dict(
                long_side=None if ori_shape is None else int(max(ori_shape)),
                img_id=str(_get(sample, 'img_id', '')),
                instance_id=str(_get(sample, 'instance_id', '')),
                ious=ious.reshape(-1),
                clicks=_to_numpy(_get(sample, 'clicks'), np.int64),
                encoder_time=None if encoder_time is None else float(encoder_time),
                decoder_times=_to_numpy(_get(sample, 'decoder_times'), np.float64),
                rank=get_rank()))  # the process (GPU) that clicked it, for per-GPU timings

    def _spc_ms(self, results: List[dict]) -> Optional[float]:
        """Mean seconds-per-click in ms, or None when a sample has no timing."""
        per_instance = []
        for r in results:
            if r['encoder_time'] is None or r['decoder_times'] is None:
                return None
            decoder = r['decoder_times'][:self.max_clicks]
            n = max(len(decoder), 1)
            per_instance.append((r['encoder_time'] + decoder.sum()) / n * 1000)
        return float(np.mean(per_instance))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Summary metrics (logged); writes the files when ``output_dir`` is set.

        Args:
            results (List[dict]): the gathered results of :meth:`process`.

        Returns:
            Dict[str, float]: NoC@t, NoF@t, mIoU@k for k in ``miou_at`` (k <= K),
            ``5-mIoU`` (when K >= 5), ``{max_clicks}-SPC`` (ms, with timings) and
            ``num_instances``.
        """
        if not results:
            raise ValueError('ClickMetric got no results')
        ious = _stack_ious(results)
        full = noc_metrics(ious, self.thresholds, self.max_clicks)
        if 'mIoU@5' in full:
            full['5-mIoU'] = full['mIoU@5']
        spc = self._spc_ms(results)
        if spc is not None:
            full[f'{self.max_clicks}-SPC'] = spc
            ranks = sorted({r.get('rank', 0) for r in results})
            for rank in ranks if len(ranks) > 1 else ():  # each GPU's own timing under DDP
                full[f'{self.max_clicks}-SPC@rank{rank}'] = self._spc_ms(
                    [r for r in results if r.get('rank', 0) == rank])
        full['num_instances'] = len(results)
        by_size = self._by_size(results, ious)
        if self.output_dir is not None and is_main_process():
            self._write_files(results, ious, full, by_size)
        summary = {k: v for k, v in full.items()
                   if not k.startswith('mIoU@') or int(k[5:]) in self.miou_at}
        print_log('click metrics: ' + ', '.join(f'{k} {v:.4g}' for k, v in summary.items()),
                  logger='current')
        return summary

    def _by_size(self, results: List[dict], ious: np.ndarray) -> Dict[str, dict]:
        """NoC / NoF / mIoU per bin of the original long side (Table 2), logged."""
        if not self.size_bins:
            return {}
        if any(r.get('long_side') is None for r in results):
            raise KeyError('size_bins needs metainfo ori_shape in every data sample')
        sides = np.array([r['long_side'] for r in results])
        out = {}
        for low, high in zip((0, ) + self.size_bins[:-1], self.size_bins):
            chosen = (sides > low) & (sides <= high)
            if chosen.any():
                metrics = noc_metrics(ious[chosen], self.thresholds, self.max_clicks)
                out[f'({low}, {high}]'] = dict(metrics, num_instances=int(chosen.sum()))
                print_log(f'click metrics, long side in ({low}, {high}] ({int(chosen.sum())} instances): '
                          + ', '.join(f'{k} {v:.4g}' for k, v in metrics.items() if k.startswith(('NoC', 'NoF'))),
                          logger='current')
        return out

    def _write_files(self, results: List[dict], ious: np.ndarray, metrics: Dict[str, float],
                     by_size: Dict[str, dict]) -> None:
        """``summary.json``, ``per_instance.csv`` and ``miou_vs_clicks.png`` in ``output_dir``."""
        os.makedirs(self.output_dir, exist_ok=True)
        curve = [float(v) for v in ious.mean(axis=0)]
        with open(osp.join(self.output_dir, 'summary.json'), 'w') as f:
            json.dump(dict(metrics=metrics, miou_curve=curve, thresholds=list(self.thresholds),
                           max_clicks=self.max_clicks, by_size=by_size), f, indent=2)
        nocs = [noc_per_instance(ious, t, self.max_clicks) for t in self.thresholds]
        with open(osp.join(self.output_dir, 'per_instance.csv'), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['img_id', 'instance_id'] + [f'NoC@{_key(t)}' for t in self.thresholds]
                            + [f'iou_{k}' for k in range(1, ious.shape[1] + 1)])
            for i, r in enumerate(results):
                writer.writerow([r['img_id'], r['instance_id']] + [int(n[i]) for n in nocs]
                                + [f'{v:.6f}' for v in ious[i]])
        title = ', '.join(f'NoC@{_key(t)} {metrics[f"NoC@{_key(t)}"]:.2f}' for t in self.thresholds)
        plot_miou_curve(curve, self.thresholds, title,
                        osp.join(self.output_dir, 'miou_vs_clicks.png'))


def _figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas, independent of pyplot's global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def plot_miou_curve(curve: Sequence[float], thresholds: Sequence[float], title: str,
                    path: str) -> None:
    """Save mIoU against the number of clicks, with a dashed line per threshold.

    Args:
        curve (Sequence[float]): mIoU after clicks 1..K.
        thresholds (Sequence[float]): IoU thresholds to draw.
        title (str): plot title (the NoC values).
        path (str): PNG path.
    """
    from matplotlib.ticker import MaxNLocator
    fig = _figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(np.arange(1, len(curve) + 1), curve, marker='o', label='mIoU')
    for t in thresholds:
        ax.axhline(t, linestyle='--', linewidth=0.8, color='gray')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel('number of clicks')
    ax.set_ylabel('mIoU')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_clicks(image: np.ndarray, gt: Optional[np.ndarray], pred: Optional[np.ndarray],
                clicks: Any, path: str) -> None:
    """Save an RGB image with the predicted mask, the GT outline and numbered clicks.

    Args:
        image (np.ndarray): uint8 (H, W, 3) RGB image.
        gt (np.ndarray, optional): bool (H, W) ground truth, drawn as a yellow outline.
        pred (np.ndarray, optional): bool (H, W) prediction, drawn as a blue overlay.
        clicks (array-like): (K, 3) rows (y, x, is_positive): green positive, red
            negative dots, numbered 1..K.
        path (str): PNG path.
    """
    image = np.asarray(image)
    h, w = image.shape[:2]
    fig = _figure(8, 8 * h / w)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image)
    if pred is not None:
        overlay = np.zeros((h, w, 4))
        overlay[np.asarray(pred, dtype=bool)] = (0.1, 0.4, 1.0, 0.45)
        ax.imshow(overlay)
    if gt is not None and np.any(gt):
        ax.contour(np.asarray(gt, dtype=float), levels=[0.5], colors='yellow', linewidths=1)
    radius = max(h, w) / 150
    for i, (y, x, positive) in enumerate(np.asarray(clicks, dtype=np.int64).reshape(-1, 3), 1):
        ax.add_patch(_circle((x, y), radius, 'lime' if positive else 'red'))
        ax.annotate(str(i), (x + radius, y - radius), color='white', fontsize=8, weight='bold')
    ax.set_axis_off()
    fig.savefig(path, dpi=max(100, w / 8))


def _circle(center, radius: float, color: str):
    """A filled click dot with a black edge."""
    from matplotlib.patches import Circle
    return Circle(center, radius, facecolor=color, edgecolor='black', linewidth=0.8)
