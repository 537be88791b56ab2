"""Embeddings and click chains: what the server remembers between two clicks.

Each (image, target size) pair gets its own predictor object (all sharing one model) that
holds that image's embedding, kept in a bounded least-recently-used cache. Beside the
embedding, the entry keeps the *click chain* of the object being annotated: the clicks so
far and the low-resolution logits after each of them.

A mask is defined by its clicks alone, as in the click protocol: click 1 is predicted
without a mask prompt, click k with the logits of clicks 1..k-1. A request whose clicks
extend the cached chain by one costs one decoder pass (the previous click's logits are
reused); an undo re-runs only its last click; other click lists (another object, a
restart, an evicted entry) are replayed from the first click. Results therefore never
depend on what the server happened to remember.
"""
from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch

from .errors import BadInput, ModelUnavailable
from .images import ImageRecord, ImageStore


class Predictor(Protocol):
    """What the server needs of a predictor (:class:`mmhrsam.apis.HRSAMPredictor` has it)."""

    def set_image(self, image: np.ndarray, target_size: Optional[int] = None) -> None:
        ...

    def predict(self, points: np.ndarray, labels: np.ndarray,
                prev_logits: Any = None) -> Tuple[np.ndarray, Any, float]:
        ...


#: Makes a new predictor (sharing the model of the others); one per cached embedding.
PredictorFactory = Callable[[], Predictor]

#: torch >= 2.5 names it torch.OutOfMemoryError; older versions only torch.cuda's (same class).
OUT_OF_MEMORY = (getattr(torch, 'OutOfMemoryError', torch.cuda.OutOfMemoryError), MemoryError)


@dataclass
class Prediction:
    """A mask (H, W) bool at the original resolution and its predicted IoU."""
    mask: np.ndarray
    score: float


@dataclass
class _Entry:
    """A cached embedding and the click chain computed on it."""
    predictor: Predictor
    points: List[Tuple[float, float]] = field(default_factory=list)
    labels: List[int] = field(default_factory=list)
    logits: List[Any] = field(default_factory=list)  # after click 1, 2, ...


def check_clicks(points: Sequence[Sequence[float]], labels: Sequence[int], width: int,
                 height: int) -> Tuple[np.ndarray, np.ndarray]:
    """Validate clicks in original-image pixel coordinates.

    Returns:
        tuple: (N, 2) float64 points (x, y) and (N,) int64 labels.

    Raises:
        BadInput: no clicks, mismatched lengths, labels other than 0/1, points outside.
    """
    if len(points) == 0:
        raise BadInput('at least one click is needed: "points": [[x, y], ...]')
    if len(labels) != len(points):
        raise BadInput(f'{len(points)} points but {len(labels)} labels: give one label per point')
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    lbl = np.asarray(labels)
    if not np.isin(lbl, (0, 1)).all():
        raise BadInput(f'labels must be 1 (positive) or 0 (negative), got {sorted(set(labels))}')
    inside = (np.isfinite(pts).all(axis=1) & (pts[:, 0] >= 0) & (pts[:, 0] < width)
              & (pts[:, 1] >= 0) & (pts[:, 1] < height))
    if not inside.all():
        raise BadInput(f'points {pts[~inside].tolist()} lie outside the {width}x{height} image '
                       '(x in [0, width), y in [0, height), original-image pixels)')
    return pts, lbl.astype(np.int64)


class Segmenter:
    """Embeddings (cached) and click predictions for the images of an :class:`ImageStore`.

    Requests on one image are serialized by the caller holding ``record.lock``; the model
    itself runs one call at a time (``model_lock``), so two large embeddings never take
    memory at once.

    Args:
        predictor_factory (PredictorFactory): makes a predictor per cached embedding.
        images (ImageStore): where the pixels come from.
        target_sizes (Sequence[int]): target sizes a request may ask for.
        default_target_size (int): used when a request names none.
        cache_size (int): embeddings kept (least recently used dropped first).
    """

    def __init__(self, predictor_factory: PredictorFactory, images: ImageStore,
                 target_sizes: Sequence[int], default_target_size: int, cache_size: int = 4):
        if default_target_size not in target_sizes:
            raise ValueError(f'default target size {default_target_size} is not one of '
                             f'{list(target_sizes)}')
        if cache_size < 1:
            raise ValueError(f'cache_size must be >= 1, got {cache_size}')
        self.predictor_factory = predictor_factory
        self.images = images
        self.target_sizes = tuple(int(s) for s in target_sizes)
        self.default_target_size = int(default_target_size)
        self.cache_size = int(cache_size)
        self._cache: 'OrderedDict[Tuple[str, int], _Entry]' = OrderedDict()
        self._cache_lock = threading.Lock()
        self.model_lock = threading.Lock()

    def target_size(self, requested: Optional[int]) -> int:
        """The request's target size, or the default; 422 for sizes not offered."""
        if requested is None:
            return self.default_target_size
        if requested not in self.target_sizes:
            raise BadInput(f'target_size must be one of {list(self.target_sizes)}, got {requested}')
        return int(requested)

    # ------------------------------------------------------------------ embeddings
    def embed(self, record: ImageRecord, target_size: int) -> Tuple[_Entry, bool, float]:
        """The cached entry of (record, target size), computing the embedding when missing.

        Returns:
            tuple: the entry, whether it was cached, seconds spent computing.
        """
        key = (record.image_id, target_size)
        with self._cache_lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
                return entry, True, 0.0
        start = time.perf_counter()
        image = self.images.load(record)
        predictor = self.predictor_factory()
        with self._model_call():
            predictor.set_image(image, target_size=target_size)
        del image  # only the embedding is kept
        entry = _Entry(predictor)
        with self._cache_lock:
            self._cache[key] = entry
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return entry, False, time.perf_counter() - start

    def cached_sizes(self, image_id: str) -> List[int]:
        """Target sizes whose embedding of ``image_id`` is cached."""
        with self._cache_lock:
            return sorted(size for (iid, size) in self._cache if iid == image_id)

    @contextmanager
    def _model_call(self) -> Iterator[None]:
        """Run the model alone; out of memory -> drop every cached embedding, answer 503."""
        try:
            with self.model_lock:
                yield
        except OUT_OF_MEMORY as e:
            with self._cache_lock:
                self._cache.clear()
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise ModelUnavailable(f'the model ran out of memory ({str(e).splitlines()[0][:200]}); '
                                   'cached embeddings were dropped: try again, or use a smaller '
                                   'target size') from e

    # ------------------------------------------------------------------ clicks
    def predict(self, record: ImageRecord, points: np.ndarray, labels: np.ndarray,
                target_size: int, reset: bool = False) -> Prediction:
        """The mask of a click list (see the module docstring for the chain rule).

        Args:
            record (ImageRecord): the image (its lock held by the caller).
            points (np.ndarray): (N, 2) clicks (x, y), from :func:`check_clicks`.
            labels (np.ndarray): (N,) 1 positive, 0 negative.
            target_size (int): encoder input size.
            reset (bool): start a new object: forget the cached chain first.
        """
        entry, _, _ = self.embed(record, target_size)
        clicks = [(float(x), float(y)) for x, y in points]
        click_labels = [int(v) for v in labels]
        if reset:
            entry.points, entry.labels, entry.logits = [], [], []
        # Reuse the chain up to the last click shared with it (at least one click is recomputed,
        # since only logits, not full-resolution masks, are kept).
        shared = 0
        while (shared < min(len(entry.points), len(clicks)) and entry.points[shared] == clicks[shared]
               and entry.labels[shared] == click_labels[shared]):
            shared += 1
        start = min(shared, len(clicks) - 1)
        del entry.points[start:], entry.labels[start:], entry.logits[start:]
        mask, score = None, 0.0
        for k in range(start, len(clicks)):
            prev = entry.logits[k - 1] if k > 0 else None
            with self._model_call():
                mask, logits, score = entry.predictor.predict(points[:k + 1], labels[:k + 1], prev)
            entry.points.append(clicks[k])
            entry.labels.append(click_labels[k])
            entry.logits.append(logits)
        return Prediction(np.asarray(mask, dtype=bool), float(score))
