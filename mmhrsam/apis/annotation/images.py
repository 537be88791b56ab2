"""The images the server knows: files of the ``--images`` folder and uploads.

An image is decoded only when it is needed in full (validating an upload, making its
preview, computing an embedding) and not kept afterwards: an 8192² RGB image is 192 MiB,
and once its embedding is cached the predictor never needs the pixels again. The one
exception is the latest upload, kept decoded until its first embedding takes it (an
upload is normally followed by exactly that), so it is not decoded twice. Sizes are
read from the file header first, so an image over ``max_pixels`` is refused before any
decoding.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from mmhrsam.datasets.io import BadSampleError, read_image
from .errors import AnnotationError, NotAnImage, NotFound, TooLarge

#: File name endings listed from the ``--images`` folder.
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')

#: JPEG quality of the previews sent to the browser.
PREVIEW_QUALITY = 92


@dataclass
class ImageRecord:
    """One image the page can open.

    Attributes:
        image_id (str): opaque id used in the URLs (``u`` + content hash for uploads, ``f`` +
            name hash for folder files, so both stay the same across restarts).
        name (str): file name, as listed and written into the annotation JSON.
        stem (str): name of the output files ``<out>/<stem>.json`` and ``<out>/<stem>/``.
        path (Path): where the file is on disk.
        source (str): ``'folder'`` or ``'upload'``.
        width (int): width in pixels (from the header).
        height (int): height in pixels (from the header).
        lock (threading.Lock): serializes the requests on this image.
    """

    image_id: str
    name: str
    stem: str
    path: Path
    source: str
    width: int
    height: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    preview: Optional[bytes] = field(default=None, repr=False)
    preview_size: Optional[Tuple[int, int]] = None  # (w, h)

    def describe(self) -> dict:
        """The JSON description sent to the page."""
        return dict(image_id=self.image_id, name=self.name, stem=self.stem, source=self.source,
                    width=self.width, height=self.height)


def safe_name(name: str) -> str:
    """A file name without directories or unusual characters (client names are untrusted)."""
    base = os.path.basename(name.replace('\\', '/'))
    base = re.sub(r'[^A-Za-z0-9._-]+', '_', base).lstrip('.')
    return base or 'image'


def read_size(path: Path, shown_name: str, max_pixels: int) -> Tuple[int, int]:
    """(width, height) from the header; refuses non-images and images over ``max_pixels``."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Image.DecompressionBombError as e:
        raise TooLarge(f'{shown_name}: {e}') from e
    except UnidentifiedImageError as e:  # its message names the server-side path: not shown
        raise NotAnImage(f'{shown_name} is not an image file that can be read') from e
    except Exception as e:  # PIL raises OSError, SyntaxError, ... on damaged headers
        raise NotAnImage(f'{shown_name} is not an image file that can be read ({e})') from e
    if width * height > max_pixels:
        raise TooLarge(f'{shown_name} has {width}x{height} = {width * height:,} pixels, more than '
                       f'the limit of {max_pixels:,} (--max-pixels)')
    return width, height


class ImageStore:
    """Registry of images: the ``--images`` folder (re-scanned on listing) plus uploads.

    Args:
        upload_dir (Path): where uploaded files are written (one sub-folder per image).
        max_pixels (int): largest accepted width x height.
        images_dir (Path, optional): folder whose image files are listed (not recursive).
        preview_max_side (int): long side of the preview sent to the browser; smaller
            images are sent at their own size.
    """

    def __init__(self, upload_dir: Path, max_pixels: int, images_dir: Optional[Path] = None,
                 preview_max_side: int = 2048):
        if max_pixels <= 0 or preview_max_side <= 0:
            raise ValueError('max_pixels and preview_max_side must be positive')
        if images_dir is not None and not Path(images_dir).is_dir():
            raise ValueError(f'--images {images_dir} is not a directory')
        self.upload_dir = Path(upload_dir)
        self.max_pixels = int(max_pixels)
        self.images_dir = None if images_dir is None else Path(images_dir)
        self.preview_max_side = int(preview_max_side)
        self._records: Dict[str, ImageRecord] = {}
        self._pending: Optional[Tuple[str, np.ndarray]] = None  # latest upload, decoded
        self._lock = threading.Lock()  # guards _records and _pending

    # ------------------------------------------------------------------ registry
    def list(self) -> List[dict]:
        """Folder images (sorted by name; unreadable ones with an ``error``), then uploads."""
        folder = []
        if self.images_dir is not None:
            for path in sorted(self.images_dir.iterdir()):
                if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                try:
                    folder.append(self._folder_record(path).describe())
                except AnnotationError as e:
                    folder.append(dict(name=path.name, source='folder', error=str(e)))
        with self._lock:
            uploads = [r.describe() for r in self._records.values() if r.source == 'upload']
        return folder + uploads

    def get(self, image_id: str) -> ImageRecord:
        """The record of ``image_id``; folder files are found even before a listing."""
        with self._lock:
            record = self._records.get(image_id)
        if record is None and self.images_dir is not None and image_id.startswith('f'):
            for path in self.images_dir.iterdir():
                if path.is_file() and _folder_id(path.name) == image_id:
                    return self._folder_record(path)
        if record is None:
            raise NotFound(f'unknown image id {image_id!r}: upload the image or pick one from '
                           'GET /api/images')
        return record

    def _folder_record(self, path: Path) -> ImageRecord:
        image_id = _folder_id(path.name)
        with self._lock:
            if image_id in self._records:
                return self._records[image_id]
        width, height = read_size(path, path.name, self.max_pixels)
        record = ImageRecord(image_id, path.name, Path(safe_name(path.name)).stem, path, 'folder',
                             width, height)
        with self._lock:
            return self._records.setdefault(image_id, record)

    def add_upload(self, filename: str, data: bytes) -> ImageRecord:
        """Register uploaded bytes: checked (header, size, full decode) and written to disk.

        The same content uploaded again gives the same record (and id).
        """
        name = safe_name(filename or 'upload.png')
        if not data:
            raise NotAnImage(f'{name} is empty')
        image_id = 'u' + hashlib.sha1(data).hexdigest()[:16]
        with self._lock:
            if image_id in self._records:
                return self._records[image_id]
        folder = self.upload_dir / image_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(data)
        try:
            width, height = read_size(path, name, self.max_pixels)
            record = ImageRecord(image_id, name, Path(name).stem, path, 'upload', width, height)
            image = self.load(record)  # full decode: catches truncated files
            self._make_preview(record, image)
        except AnnotationError:
            path.unlink()
            folder.rmdir()
            raise
        with self._lock:
            self._pending = (image_id, image)
            return self._records.setdefault(image_id, record)

    # ------------------------------------------------------------------ pixels
    def load(self, record: ImageRecord) -> np.ndarray:
        """Decode ``record`` as an (H, W, 3) uint8 RGB array (the latest upload: handed over once)."""
        with self._lock:
            if self._pending is not None and self._pending[0] == record.image_id:
                image, self._pending = self._pending[1], None
                return image
        try:
            image = read_image(record.path)
        except BadSampleError as e:  # the decoder's own words, without the server-side path
            raise AnnotationError(f'{record.name} cannot be decoded: it is truncated or damaged '
                                  f'({e.__cause__ or e})') from e
        if image.shape[:2] != (record.height, record.width):
            raise AnnotationError(f'{record.name} decodes to {image.shape[1]}x{image.shape[0]} '
                                  f'but its header says {record.width}x{record.height}')
        return image

    def preview(self, record: ImageRecord) -> bytes:
        """JPEG preview of ``record`` (long side at most ``preview_max_side``)."""
        if record.preview is None:
            self._make_preview(record, self.load(record))
        return record.preview

    def _make_preview(self, record: ImageRecord, image: np.ndarray) -> None:
        scale = min(1.0, self.preview_max_side / max(record.width, record.height))
        size = (max(1, round(record.width * scale)), max(1, round(record.height * scale)))
        if scale < 1:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode('.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_QUALITY])
        if not ok:
            raise AnnotationError(f'could not encode a preview of {record.name}', 500)
        record.preview, record.preview_size = encoded.tobytes(), size


def _folder_id(name: str) -> str:
    return 'f' + hashlib.sha1(name.encode('utf-8')).hexdigest()[:16]
