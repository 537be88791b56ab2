"""Saved objects: one 0/255 PNG per object and a COCO-style JSON per image.

Layout under the output folder::

    <out>/<image stem>.json          COCO-style: images, categories, annotations (RLE)
    <out>/<image stem>/<object_id>.png   0/255 mask at the original resolution

Nothing is ever overwritten or lost: object ids are unique (one more than every id in the
JSON and every PNG in the folder), a PNG is written to a temporary file and hard-linked
to its name (which fails if the name exists), and the JSON is written to a temporary
file and moved over the old one with ``os.replace`` (atomic), after its PNG exists. The
JSON is the record: the server reads it back on every listing, so a restart keeps
everything saved. A JSON that cannot be read is reported, never replaced.
"""
from __future__ import annotations

import datetime
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .errors import AnnotationError, Conflict
from .images import ImageRecord

#: Category of objects saved without a label.
DEFAULT_CATEGORY = 'object'


def encode_mask(mask: np.ndarray) -> dict:
    """COCO compressed RLE, bbox [x, y, w, h] and area of an (H, W) bool mask (pycocotools)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return dict(rle=dict(size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii')),
                bbox=[float(v) for v in mask_utils.toBbox(rle)], area=int(mask_utils.area(rle)))


def _write_temp(directory: Path, data: bytes) -> str:
    """``data`` in a new temporary file of ``directory`` (same file system as the target)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.part')
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


class AnnotationStore:
    """Reads and appends the saved objects of each image.

    Args:
        out_dir (Path): output folder (created when missing).
    """

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one save at a time: ids and JSON updates stay consistent

    def json_path(self, record: ImageRecord) -> Path:
        return self.out_dir / f'{record.stem}.json'

    def _read(self, record: ImageRecord) -> Optional[dict]:
        path = self.json_path(record)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding='utf-8'))
            images, annotations = data['images'], data['annotations']
            if not isinstance(images, list) or not isinstance(annotations, list):
                raise TypeError('"images" and "annotations" must be lists')
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise Conflict(f'{path} exists but cannot be read as annotations ({e}); it is left '
                           'untouched: move or repair it to save objects of this image') from e
        if images and (images[0].get('width'), images[0].get('height')) != (record.width,
                                                                             record.height):
            raise Conflict(f'{path} holds annotations of a {images[0].get("width")}x'
                           f'{images[0].get("height")} image named {images[0].get("file_name")!r}, '
                           f'not of this {record.width}x{record.height} image; rename the file')
        return data

    def list(self, record: ImageRecord) -> List[dict]:
        """The saved objects of ``record``, oldest first."""
        data = self._read(record)
        if data is None:
            return []
        names = {c['id']: c['name'] for c in data.get('categories', [])}
        return [dict(object_id=a['id'], label=a.get('label', ''),
                     category=names.get(a.get('category_id'), DEFAULT_CATEGORY),
                     rle=a['segmentation'], bbox=a['bbox'], area=a['area'],
                     score=a.get('score'), mask_file=a.get('mask_file'),
                     points=a.get('points'), labels=a.get('labels'),
                     target_size=a.get('target_size'))
                for a in data['annotations']]

    def save(self, record: ImageRecord, mask: np.ndarray, score: float, points: Sequence,
             labels: Sequence[int], label: str, target_size: int) -> dict:
        """Write the PNG of a new object and add it to the JSON.

        Args:
            record (ImageRecord): the image.
            mask (np.ndarray): (H, W) bool mask at the original resolution.
            score (float): the model's predicted IoU.
            points (Sequence): the clicks [[x, y], ...] that produced the mask.
            labels (Sequence[int]): their labels.
            label (str): the user's label ('' for none).
            target_size (int): encoder input size used.

        Returns:
            dict: the saved object as :meth:`list` gives it.
        """
        if mask.shape != (record.height, record.width):
            raise AnnotationError(f'mask of shape {mask.shape} does not match the image', 500)
        ok, png = cv2.imencode('.png', mask.astype(np.uint8) * 255)
        if not ok:
            raise AnnotationError('could not encode the mask as PNG', 500)
        with self._lock:
            data = self._read(record) or self._new_document(record)
            mask_dir = self.out_dir / record.stem
            mask_dir.mkdir(exist_ok=True)
            object_id = self._link_new_png(mask_dir, png.tobytes(), self._next_id(data, mask_dir))
            encoded = encode_mask(mask)
            annotation = dict(
                id=object_id, image_id=data['images'][0]['id'],
                category_id=self._category_id(data, label.strip() or DEFAULT_CATEGORY),
                segmentation=encoded['rle'], area=encoded['area'], bbox=encoded['bbox'],
                iscrowd=0, label=label, score=float(score),
                mask_file=f'{record.stem}/{object_id}.png',
                points=[[float(x), float(y)] for x, y in points], labels=[int(v) for v in labels],
                target_size=int(target_size),
                created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
            data['annotations'].append(annotation)
            text = json.dumps(data, indent=1).encode('utf-8')
            os.replace(_write_temp(self.out_dir, text), self.json_path(record))
        return next(o for o in self.list(record) if o['object_id'] == object_id)

    @staticmethod
    def _new_document(record: ImageRecord) -> dict:
        return dict(info=dict(description='mmhrsam annotations (tools/annotate.py)'),
                    images=[dict(id=1, file_name=record.name, width=record.width,
                                 height=record.height)],
                    categories=[], annotations=[])

    @staticmethod
    def _next_id(data: dict, mask_dir: Path) -> int:
        used = [int(a['id']) for a in data['annotations']]
        used += [int(p.stem) for p in mask_dir.glob('*.png') if p.stem.isdigit()]
        return max(used, default=0) + 1

    @staticmethod
    def _link_new_png(mask_dir: Path, png: bytes, object_id: int) -> int:
        """Give ``png`` the first free name ``<id>.png`` from ``object_id`` on; returns the id."""
        tmp = _write_temp(mask_dir, png)
        try:
            while True:
                try:
                    os.link(tmp, mask_dir / f'{object_id}.png')  # fails if the name exists
                    return object_id
                except FileExistsError:
                    object_id += 1
        finally:
            os.unlink(tmp)

    @staticmethod
    def _category_id(data: dict, name: str) -> int:
        for category in data['categories']:
            if category['name'] == name:
                return category['id']
        category_id = max((c['id'] for c in data['categories']), default=0) + 1
        data['categories'].append(dict(id=category_id, name=name))
        return category_id
