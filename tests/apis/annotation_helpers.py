"""Shared pieces of the annotation app tests: a stand-in predictor and test images.

``DiskPredictor`` and ``LabelMapPredictor`` are deterministic stand-ins for
:class:`mmhrsam.apis.HRSAMPredictor`, injected through the app factory where a test must
know the mask in advance (a random-weight model may predict anything). DiskPredictor's
mask is the union of disks around the positive clicks minus disks around the negative
ones; LabelMapPredictor answers with the ground-truth objects under the positive clicks
minus those under the negative ones (an oracle for a scene whose label map is known).
Both check the click-chain contract: each call must receive exactly the logits of the
call for the clicks before it.
"""
import threading
import time
from io import BytesIO

import numpy as np
import torch
from PIL import Image


class DiskPredictor:
    """Stand-in predictor; ``stats`` is shared by all predictors of one factory.

    Args:
        stats (dict): counters filled in: ``set_image`` (list of (shape, target_size)),
            ``predict`` (list of (clicks, prev)), ``chain_errors``, ``max_active``.
        radius (int): disk radius in original pixels.
        delay (float): seconds each call sleeps (to make requests overlap).
        oom (list): set_image raises torch.OutOfMemoryError while this list is non-empty
            (one element popped per failure).
    """

    def __init__(self, stats, radius=12, delay=0.0, oom=None):
        self.stats, self.radius, self.delay, self.oom = stats, radius, delay, oom
        self.shape = None

    def _enter(self):
        with self.stats['lock']:
            self.stats['active'] += 1
            self.stats['max_active'] = max(self.stats['max_active'], self.stats['active'])
        time.sleep(self.delay)

    def _leave(self):
        with self.stats['lock']:
            self.stats['active'] -= 1

    def set_image(self, image, target_size=None):
        if self.oom:
            self.oom.pop()
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 64.00 GiB')
        self._enter()
        self.shape = image.shape[:2]
        self.stats['set_image'].append((tuple(image.shape), target_size))
        self._leave()

    def predict(self, points, labels, prev_logits=None):
        self._enter()
        clicks = tuple((float(x), float(y), int(v)) for (x, y), v in zip(points, labels))
        expected_prev = None if len(clicks) == 1 else ('logits', clicks[:-1])
        if prev_logits != expected_prev:
            self.stats['chain_errors'].append((clicks, prev_logits))
        self.stats['predict'].append((clicks, prev_logits))
        mask = self.draw(clicks)
        self._leave()
        return mask, ('logits', clicks), 0.5

    def draw(self, clicks):
        """(H, W) bool mask of ((x, y, label), ...)."""
        mask = np.zeros(self.shape, bool)
        r = self.radius
        for x, y, v in clicks:  # each disk drawn in its box only (fast on 8192² images)
            x0, y0 = max(int(x) - r, 0), max(int(y) - r, 0)
            yy, xx = np.ogrid[y0:int(y) + r + 1, x0:int(x) + r + 1]
            disk = (xx - x) ** 2 + (yy - y) ** 2 <= r ** 2
            box = mask[y0:y0 + disk.shape[0], x0:x0 + disk.shape[1]]
            disk = disk[:box.shape[0], :box.shape[1]]
            box[disk] = bool(v)
        return mask


class LabelMapPredictor(DiskPredictor):
    """Oracle stand-in: the objects of ``label_map`` (H, W; 0 background) under the clicks."""

    def __init__(self, stats, label_map):
        super().__init__(stats)
        self.label_map = label_map

    def draw(self, clicks):
        ids = [self.label_map[int(y), int(x)] for x, y, _ in clicks]
        positive = {k for k, (_, _, v) in zip(ids, clicks) if v and k}
        negative = {k for k, (_, _, v) in zip(ids, clicks) if not v}
        return np.isin(self.label_map, sorted(positive - negative))


def new_stats():
    return dict(lock=threading.Lock(), active=0, max_active=0, set_image=[], predict=[],
                chain_errors=[])


def disk_factory(radius=12, delay=0.0, oom=None):
    """(factory, stats) for the app: each call of factory() gives a new DiskPredictor."""
    stats = new_stats()
    return (lambda: DiskPredictor(stats, radius, delay, oom)), stats


def label_map_factory(label_map):
    """(factory, stats) for the app: each call of factory() gives a new LabelMapPredictor."""
    stats = new_stats()
    return (lambda: LabelMapPredictor(stats, label_map)), stats


def png_bytes(image):
    """PNG file content of an (H, W[, 3]) uint8 array (PIL)."""
    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format='PNG')
    return buffer.getvalue()


def synthetic_scene(size, seed=3):
    """A scene of the built-in synthetic dataset: (image (H, W, 3) uint8, masks (N, H, W))."""
    from mmhrsam.datasets import SyntheticHighResDataset
    dataset = SyntheticHighResDataset(num_images=1, image_size=size, max_objects=2, seed=seed,
                                      shapes=('wavy', 'star'), object_scale=(0.25, 0.35),
                                      pipeline=[])
    scene = dataset.scene(0)
    return scene.image, scene.masks()
