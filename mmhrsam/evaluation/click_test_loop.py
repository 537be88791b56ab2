"""The click evaluation protocol (docs/evaluation_protocol.md) as an MMEngine test loop."""
from __future__ import annotations

import os
import random
import time
from contextlib import nullcontext
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.evaluator import Evaluator
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop
from torch import Tensor
from tqdm import tqdm

from mmhrsam.registry import LOOPS
from mmhrsam.structures import InteractiveDataSample
from mmhrsam.structures.click_sampling import next_click_torch
from mmhrsam.structures.clicker import next_click, original_click
from mmhrsam.structures.image_geometry import (check_protocol, check_target_size, map_points, map_points_original,
                                               postprocess_logits, postprocess_logits_original, preprocess_image,
                                               preprocess_image_original)
from .metrics import plot_clicks

#: Preprocessing used when the model has no InteractiveDataPreprocessor (SAM's statistics).
DEFAULT_PREPROCESSING = dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), bgr_input=False)


def preprocessing_of(model) -> dict:
    """mean / std / channel order of the model's data preprocessor (what training used)."""
    pre = getattr(model, 'data_preprocessor', None)
    if pre is None or not hasattr(pre, 'mean') or getattr(pre, 'mean', None) is None:
        return dict(DEFAULT_PREPROCESSING)
    return dict(mean=tuple(float(v) for v in pre.mean.flatten()), std=tuple(float(v) for v in pre.std.flatten()),
                bgr_input=bool(getattr(pre, 'bgr_input', False)))


class ClickProtocol:
    """Clicks one instance ``max_clicks`` times and records IoU and device time per click.

    Per instance (docs/evaluation_protocol.md): resize the long side to ``target_size``, normalize, pad; one
    encoder pass; then per click: the next click from the current prediction at the
    original resolution (:func:`next_click` on CPU or :func:`next_click_torch` on the
    model's device), one prompt-encoder + decoder pass with all clicks so far and the
    previous low-resolution logits, logits upsampled, cropped and resized back to the
    original size, thresholded at 0; IoU at the original resolution (pixels marked 255 in
    the mask excluded). When the prediction is perfect no further click exists and the IoU
    is carried forward. Timing covers only the encoder pass and each decoder pass including
    its upsampling (device-synchronized before and after); click simulation is excluded
    (so that timings compare encoders and decoders, not click simulators).

    Args:
        model: an :class:`InteractiveSAM` (``extract_feat``, ``decode``).
        target_size (int): long side after resizing and side of the padded square.
        max_clicks (int): clicks per instance.
        clicker (str): ``'cpu'`` (NumPy/SciPy), ``'device'`` (torch on the model's device)
            or ``'auto'`` (device when it is a GPU).
        precision (str): ``'fp32'`` or ``'bf16'``: autocast of the encoder. The decoder
            always runs in fp32 on the fp32 embedding: it is launch-bound and bf16 autocast
            only adds casts (docs/benchmarks.md).
        protocol (str): ``'exact'`` (above) or ``'original'``: the original implementation's
            protocol (docs/evaluation_protocol.md): :func:`preprocess_image_original`,
            :func:`map_points_original`, :func:`postprocess_logits_original`,
            :func:`original_click` (OpenCV distances on the CPU, ties broken by a
            ``random.Random(seed)`` shared by the whole run) and, when no error pixel is left,
            the decoder run again with the same clicks and the previous logits.
        seed (int): seed of the ``'original'`` tie-breaking (42, the original's default);
            :meth:`reset` restarts the sequence.
    """

    def __init__(self, model, target_size: int = 1024, max_clicks: int = 20, clicker: str = 'auto',
                 precision: str = 'fp32', protocol: str = 'exact', seed: int = 42):
        if clicker not in ('auto', 'cpu', 'device'):
            raise ValueError(f"clicker must be 'auto', 'cpu' or 'device', got {clicker!r}")
        if check_protocol(protocol) == 'original' and clicker == 'device':
            raise ValueError("protocol='original' computes clicks with OpenCV on the CPU, as the original "
                             "implementation: use clicker='cpu' or 'auto'")
        if precision not in ('fp32', 'bf16'):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.model = model
        self.device = next(model.parameters()).device
        self.target_size = check_target_size(target_size)
        self.max_clicks = int(max_clicks)
        self.use_device_clicker = protocol == 'exact' and (
            clicker == 'device' or (clicker == 'auto' and self.device.type == 'cuda'))
        self.precision = precision
        self.preprocessing = preprocessing_of(model)
        self.protocol, self.seed = protocol, int(seed)
        self.reset()

    def reset(self) -> None:
        """Restart the ``'original'`` protocol's random tie-breaking from ``seed``."""
        self.rng = random.Random(self.seed)

    def _sync(self) -> float:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _autocast(self):
        if self.precision == 'bf16':
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _next_click(self, pred: Tensor, gt: Tensor, clicked: Tensor, valid: Tensor) -> Optional[Tuple[int, int, bool]]:
        if self.protocol == 'original':
            return original_click(pred.cpu().numpy(), gt.cpu().numpy(), clicked.cpu().numpy(), self.rng,
                                  valid=valid.cpu().numpy())
        if self.use_device_clicker:
            ys, xs, positive, has = next_click_torch(pred[None], gt[None], clicked[None], valid[None])
            return (int(ys[0]), int(xs[0]), bool(positive[0])) if bool(has[0]) else None
        return next_click(pred.cpu().numpy(), gt.cpu().numpy(), clicked.cpu().numpy(), valid=valid.cpu().numpy())

    def _preprocess(self, image: np.ndarray) -> Tuple[Tensor, Tuple[int, int], Optional[Tuple[int, int]]]:
        """Encoder input, resized (h, w) and, for ``'original'``, the 32-padded (H', W')."""
        pre = self.preprocessing
        args = (image, self.target_size, pre['mean'], pre['std'], pre['bgr_input'], self.device)
        if self.protocol == 'original':
            return preprocess_image_original(*args)
        return (*preprocess_image(*args), None)

    def _map_click(self, x: int, y: int, original: Tuple[int, int], input_size: Tuple[int, int],
                   padded: Optional[Tuple[int, int]]) -> List[float]:
        """A click (x, y) of the original frame in the encoder input frame."""
        if self.protocol == 'original':
            return map_points_original(np.array([[x, y]]), padded, input_size)[0].tolist()
        return map_points(np.array([[x, y]]), original, input_size)[0].tolist()

    def _full_logits(self, low: Tensor, input_size: Tuple[int, int], padded: Optional[Tuple[int, int]],
                     original: Tuple[int, int]) -> Tensor:
        """Low-resolution logits -> (1, 1, H, W) logits at the original size."""
        if self.protocol == 'original':
            return postprocess_logits_original(low, input_size, self.target_size, padded, original)
        return postprocess_logits(low, input_size, self.target_size, original)

    @torch.no_grad()
    def __call__(self, image: Tensor, gt_mask: Tensor) -> Dict[str, np.ndarray]:
        """Evaluate one instance.

        Args:
            image (Tensor): (3, H, W) uint8 RGB at the original resolution.
            gt_mask (Tensor): (1, H, W) or (H, W) uint8: 1 object, 0 background, 255 ignore.

        Returns:
            dict: ``ious`` (K,), ``clicks`` (K, 3) (y, x, positive; -1 rows where no click
            was left), ``encoder_time`` (s) and ``decoder_times`` (K,) (s).
        """
        gt_mask = gt_mask.reshape(gt_mask.shape[-2:]).to(self.device)
        gt, valid = gt_mask == 1, gt_mask != 255
        original = tuple(gt.shape)
        x, input_size, padded = self._preprocess(image.permute(1, 2, 0).cpu().numpy())
        t0 = self._sync()
        with self._autocast():
            embeddings = self.model.extract_feat(x).float()
        encoder_time = self._sync() - t0
        pred = torch.zeros_like(gt)
        clicked = torch.zeros_like(gt)
        points: List[List[int]] = []
        labels: List[int] = []
        prev = None
        ious, clicks, times = [], [], []
        for _ in range(self.max_clicks):
            click = self._next_click(pred, gt, clicked, valid)
            if click is None and (self.protocol == 'exact' or not points):
                # perfect prediction: nothing left to click
                ious.append(ious[-1] if ious else 1.0)
                clicks.append((-1, -1, -1))
                times.append(0.0)
                continue
            if click is None:  # 'original': the decoder runs again with the same clicks
                clicks.append((-1, -1, -1))
            else:
                y, x_, positive = click
                clicked[y, x_] = True
                clicks.append((y, x_, int(positive)))
                points.append(self._map_click(x_, y, original, input_size, padded))
                labels.append(int(positive))
            pts = torch.tensor([points], dtype=torch.float32, device=self.device)
            lbl = torch.tensor([labels], dtype=torch.long, device=self.device)
            t0 = self._sync()
            low, _ = self.model.decode(embeddings, pts, lbl, prev)
            logits = self._full_logits(low, input_size, padded, original)
            pred = logits[0, 0] > 0
            times.append(self._sync() - t0)
            prev = low
            inter = (pred & gt & valid).sum().item()
            union = ((pred | gt) & valid).sum().item()
            ious.append(inter / union if union else 1.0)
        self.last_prediction = pred
        return dict(ious=np.asarray(ious, dtype=np.float64), clicks=np.asarray(clicks, dtype=np.int64),
                    encoder_time=encoder_time, decoder_times=np.asarray(times, dtype=np.float64))


@LOOPS.register_module()
class ClickTestLoop(TestLoop):
    """Test (or validation) loop running :class:`ClickProtocol` on every instance.

    Each dataset item is one instance at its original resolution (``inputs`` (3, H, W)
    uint8 RGB, ``data_samples[i].gt_mask`` (1, H, W)); instances of a batch are clicked one
    after the other. The first batch is run ``warmup`` extra times without recording, so
    20-SPC excludes compilation and allocator warm-up. Metrics whose ``output_dir`` is None
    get the run's log directory, so the JSON summary, CSV and plot land next to the logs;
    the metrics' ``max_clicks`` is set to the loop's; the first ``num_vis`` instances of each
    rank are drawn (clicks and final mask) into
    ``<log_dir>/vis/``. Works under DDP: every rank clicks its share and the metric merges.

    Args:
        runner: the MMEngine runner.
        dataloader (dict | DataLoader): test dataloader.
        evaluator (dict | list | Evaluator): usually ``dict(type='ClickMetric')``.
        target_size (int): long side of the encoder input (1024/2048/3072/4096 in Table 2).
        max_clicks (int): clicks per instance (20).
        clicker (str): see :class:`ClickProtocol`.
        precision (str): see :class:`ClickProtocol`.
        warmup (int): untimed runs of the first batch.
        num_vis (int): instances drawn per rank.
        fp16 (bool): kept False; MMEngine's TestLoop argument.
        protocol (str): ``'exact'`` (default) or ``'original'``, see :class:`ClickProtocol`.
        seed (int): seed of the ``'original'`` protocol's tie-breaking, restarted after the
            warm-up so that the recorded run is that of a fresh process.
    """

    def __init__(self, runner, dataloader, evaluator: Union[dict, list, Evaluator], target_size: int = 1024,
                 max_clicks: int = 20, clicker: str = 'auto', precision: str = 'fp32', warmup: int = 1,
                 num_vis: int = 0, fp16: bool = False, protocol: str = 'exact', seed: int = 42):
        super().__init__(runner, dataloader, evaluator, fp16)
        self.target_size, self.max_clicks, self.clicker = target_size, max_clicks, clicker
        self.precision, self.warmup, self.num_vis = precision, warmup, num_vis
        self.protocol, self.seed = check_protocol(protocol), seed
        self._num_drawn = 0

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        model = self.runner.model.module if is_model_wrapper(self.runner.model) else self.runner.model
        model.eval()
        for metric in self.evaluator.metrics:
            if hasattr(metric, 'output_dir') and metric.output_dir is None:
                metric.output_dir = self.runner.log_dir
            if hasattr(metric, 'max_clicks'):  # NoC / SPC count the clicks this loop makes
                metric.max_clicks = self.max_clicks
        protocol = ClickProtocol(model, self.target_size, self.max_clicks, self.clicker, self.precision,
                                 self.protocol, self.seed)
        progress = tqdm(total=len(self.dataloader), desc='click evaluation', unit='batch',
                        disable=not is_main_process(), dynamic_ncols=True)
        for idx, data_batch in enumerate(self.dataloader):
            if idx == 0:
                for _ in range(self.warmup):
                    self._click_batch(protocol, data_batch, draw=False)
                protocol.reset()
            self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
            outputs = self._click_batch(protocol, data_batch)
            self.evaluator.process(data_samples=outputs, data_batch=data_batch)
            self.runner.call_hook('after_test_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs)
            progress.update()
        progress.close()
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def _click_batch(self, protocol: ClickProtocol, data_batch: dict, draw: bool = True
                     ) -> List[InteractiveDataSample]:
        outputs = []
        for image, sample in zip(data_batch['inputs'], data_batch['data_samples']):
            result = protocol(image, sample.gt_mask)
            out = InteractiveDataSample(metainfo=sample.metainfo)
            out.set_data(result)
            outputs.append(out)
            if draw:
                self._draw(image, sample, result, protocol.last_prediction)
        return outputs

    def _draw(self, image: Tensor, sample, result: dict, pred: Tensor) -> None:
        if self._num_drawn >= self.num_vis:
            return
        self._num_drawn += 1
        name = f"{sample.metainfo.get('img_id', self._num_drawn)}_{sample.metainfo.get('instance_id', 0)}"
        name = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in str(name))
        out_dir = os.path.join(self.runner.log_dir, 'vis')
        os.makedirs(out_dir, exist_ok=True)
        clicks = result['clicks'][result['clicks'][:, 0] >= 0]
        plot_clicks(image.permute(1, 2, 0).cpu().numpy(), sample.gt_mask.reshape(image.shape[-2:]).cpu().numpy() == 1,
                    pred.cpu().numpy(), clicks, os.path.join(out_dir, f'{name}.png'))
