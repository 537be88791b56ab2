"""Robust file reading shared by every dataset: images, masks, folder scans.

Every problem with one sample's files (missing, unreadable, truncated, size mismatch,
empty mask) raises :class:`BadSampleError` naming the file(s), so a dataset can skip the
sample in training and report it clearly in testing (see
:meth:`BaseInteractiveDataset.prepare_data`).

Decoding rules:

* images: ``cv2.imdecode(..., IMREAD_UNCHANGED)`` (BGR -> RGB), so 16-bit and RGBA files
  keep their data until :func:`mmhrsam.apis.predictor.as_rgb_image` brings them to
  (H, W, 3) uint8 (16-bit values ``round(v / 257)``, alpha dropped, gray replicated).
  EXIF orientation is *not* applied: annotations (COCO, masks) refer to the stored
  pixel grid. Formats OpenCV cannot decode (e.g. GIF) go through PIL.
* truncated JPEGs: libjpeg fills the missing part with gray and only warns; a JPEG whose
  data does not end with the EOI marker is therefore decoded again by PIL, which raises.
* masks: PIL, so palette PNGs give their palette *indices* (as DAVIS/VOC annotations
  mean them) unless the palette is gray (8-bit BMP masks: their gray values); colour
  masks give the max over the colour channels (any non-black colour is foreground, as
  RITM reads DAVIS); alpha channels are dropped.
"""
from __future__ import annotations

import os
import re
from io import BytesIO
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from mmhrsam.structures.image_geometry import as_rgb_image

PathLike = Union[str, os.PathLike]

#: Value of ignore pixels in instance masks (as the losses and metrics expect).
IGNORE_VALUE = 255

#: Scans over more files than this show a tqdm progress bar.
PROGRESS_MIN_ITEMS = 2000

_JPEG_SOI = b'\xff\xd8'
_JPEG_EOI = b'\xff\xd9'


class BadSampleError(ValueError):
    """A sample's files are missing, unreadable, inconsistent or hold no object."""


def progress(items: Iterable, desc: str, total: Optional[int] = None) -> Iterable:
    """``tqdm`` over ``items``, silent for small collections (tests, tiny datasets)."""
    if total is None and hasattr(items, '__len__'):
        total = len(items)
    return tqdm(items, desc=desc, total=total, leave=False,
                disable=total is not None and total < PROGRESS_MIN_ITEMS)


def read_bytes(path: PathLike) -> bytes:
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as e:  # missing file, permission, directory, ...
        raise BadSampleError(f'cannot read {path}: {e}') from e


def _decode_with_pil(data: bytes, path: PathLike) -> np.ndarray:
    """Decode with PIL (RGB(A) channel order); raises on truncated data."""
    try:
        with Image.open(BytesIO(data)) as im:
            im.load()  # raises on truncated data (LOAD_TRUNCATED_IMAGES is off by default)
            if im.mode == 'P':
                im = im.convert('RGBA' if 'transparency' in im.info else 'RGB')
            return np.asarray(im)
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ...)
        raise BadSampleError(f'cannot decode image {path}: {e}') from e


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB.

    Args:
        path (str | PathLike): image file.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.

    Raises:
        BadSampleError: missing, unreadable or truncated file, or unsupported content.
    """
    data = read_bytes(path)
    array = None
    if data:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    truncated_jpeg = (data.startswith(_JPEG_SOI)
                      and not data.rstrip(b'\x00\r\n ').endswith(_JPEG_EOI))
    if array is None or truncated_jpeg:
        # PIL either decodes what OpenCV cannot or raises on a truncated file; a JPEG
        # with trailing junk after its EOI decodes fine in both.
        array = _decode_with_pil(data, path)
        rgb_order = True
    else:
        rgb_order = False
    if array.ndim == 3 and array.shape[2] in (3, 4) and not rgb_order:
        array = array[..., [2, 1, 0] + ([3] if array.shape[2] == 4 else [])]  # BGR(A) -> RGB(A)
    try:
        image = as_rgb_image(array)
    except (TypeError, ValueError) as e:
        raise BadSampleError(f'unsupported image {path}: {e}') from e
    if image.dtype != np.uint8:  # float TIFFs and the like
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def read_mask(path: PathLike) -> np.ndarray:
    """Read a mask file as an (H, W) array of raw label values.

    Args:
        path (str | PathLike): mask file (PNG, BMP, ...).

    Returns:
        np.ndarray: (H, W) uint8 (uint16/int32 for 16-bit label maps) raw values;
        palette images give their indices (their gray values when the palette is gray),
        colour images the max over colour channels.

    Raises:
        BadSampleError: missing, unreadable or truncated file.
    """
    data = read_bytes(path)
    try:
        with Image.open(BytesIO(data)) as im:
            im.load()
            mode, mask, palette = im.mode, np.asarray(im), im.getpalette()
    except Exception as e:
        raise BadSampleError(f'cannot decode mask {path}: {e}') from e
    if mode in ('P', 'PA') and palette is not None:
        mask = _gray_palette_values(mask[..., 0] if mode == 'PA' else mask, palette)
    elif mode == 'LA':
        mask = mask[..., 0]  # gray value; alpha dropped
    elif mask.ndim == 3:
        mask = mask[..., :3].max(axis=2)  # any non-black colour counts
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    return mask


def _gray_palette_values(indices: np.ndarray, palette: List[int]) -> np.ndarray:
    """Palette indices -> gray values when the palette is gray (8-bit BMP/PNG masks written
    as palette images); indices unchanged for colour palettes (DAVIS/VOC label maps)."""
    lut = np.zeros((256, 3), np.uint8)
    entries = np.asarray(palette[:768], np.uint8).reshape(-1, 3)
    lut[:len(entries)] = entries
    used = lut[np.unique(indices)]
    if (used[:, 0] == used[:, 1]).all() and (used[:, 1] == used[:, 2]).all():
        return lut[indices, 0]
    return indices


def image_shape(path: PathLike) -> Tuple[int, int]:
    """(H, W) of an image file from its header (no full decode)."""
    try:
        with Image.open(path) as im:
            width, height = im.size
        return height, width
    except Exception:  # unusual header: decode fully (errors name the file there)
        return tuple(read_image(path).shape[:2])


def binarize_mask(raw: np.ndarray, fg_threshold: float = 0,
                  ignore_values: Sequence[int] = ()) -> np.ndarray:
    """Raw label values -> (H, W) uint8 mask: 1 where ``raw > fg_threshold``, else 0,
    and :data:`IGNORE_VALUE` where ``raw`` is one of ``ignore_values``.
    """
    mask = (raw > fg_threshold).astype(np.uint8)
    for value in ignore_values:
        mask[raw == value] = IGNORE_VALUE
    return mask


def check_mask_shapes(masks: np.ndarray, shape: Tuple[int, int], image_desc: str,
                      mask_desc: str) -> None:
    """Raise :class:`BadSampleError` naming both sources when masks (N, H, W) do not
    match the image shape (H, W)."""
    if tuple(masks.shape[1:]) != tuple(shape):
        raise BadSampleError(f'mask size {tuple(masks.shape[1:])} of {mask_desc} does not match '
                             f'image size {tuple(shape)} of {image_desc}')


def stack_masks(masks: List[np.ndarray], sources: Sequence[str]) -> np.ndarray:
    """Stack (H, W) masks into (N, H, W) uint8; sizes must agree (error names both files)."""
    if not masks:
        raise BadSampleError(f'no masks in {", ".join(sources) or "(nothing)"}')
    for mask, source in zip(masks[1:], sources[1:]):
        if mask.shape != masks[0].shape:
            raise BadSampleError(f'mask size {mask.shape} of {source} differs from '
                                 f'{masks[0].shape} of {sources[0]}')
    return np.stack(masks).astype(np.uint8, copy=False)


# ---------------------------------------------------------------------- folder scans
def normalize_suffixes(suffix: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """'.jpg' or ('.jpg', '.png') -> lower-case tuple."""
    suffixes = (suffix,) if isinstance(suffix, str) else tuple(suffix)
    return tuple(s.lower() for s in suffixes)


def scan_files(folder: PathLike, suffixes: Union[str, Sequence[str]],
               recursive: bool = False) -> List[Path]:
    """Sorted files of ``folder`` whose name ends with one of ``suffixes`` (case-insensitive).

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'directory {folder} does not exist')
    suffixes = normalize_suffixes(suffixes)
    candidates = [p for p in (folder.rglob('*') if recursive else folder.iterdir())
                  if p.name.lower().endswith(suffixes)]
    # is_file() stats every entry: the slow part on big network folders.
    found = [p for p in progress(candidates, f'scanning {folder}') if p.is_file()]
    return sorted(found)


def strip_suffix(name: str, suffixes: Tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.lower().endswith(suffix):
            return name[:len(name) - len(suffix)]
    return name


def pair_images_and_masks(img_dir: PathLike, mask_dir: PathLike,
                          img_suffix: Union[str, Sequence[str]],
                          mask_suffix: Union[str, Sequence[str]],
                          naming: str = 'same_stem',
                          recursive: bool = False
                          ) -> List[Tuple[Path, List[Tuple[str, Path]], str]]:
    """Pair images with their instance mask files.

    Masks are matched by path relative to their folder (without suffix). ``naming``:

    * ``'same_stem'``: ``img_dir/a/b.jpg`` <-> ``mask_dir/a/b.png``: one instance, id '0';
    * ``'indexed'``: ``img_dir/a/b.jpg`` <-> ``mask_dir/a/b_0.png``, ``b_1.png``, ...: one
      instance per file, id ``k``, in the order of ``k``.

    When ``img_dir == mask_dir`` (CascadePSP folders: ``x.jpg`` next to ``x.png``) the
    suffixes tell images from masks. Images without any mask are skipped.

    Returns:
        list[tuple]: (image path, [(instance id, mask path), ...], relative stem), sorted
        by image path.

    Raises:
        ValueError: an unknown ``naming``, overlapping suffixes in a shared folder, or two
            images with the same stem (``a.jpg`` and ``a.png``).
    """
    if naming not in ('same_stem', 'indexed'):
        raise ValueError(f"naming must be 'same_stem' or 'indexed', got {naming!r}")
    img_suffixes, mask_suffixes = normalize_suffixes(img_suffix), normalize_suffixes(mask_suffix)
    img_dir, mask_dir = Path(img_dir), Path(mask_dir)
    if img_dir.resolve() == mask_dir.resolve() and set(img_suffixes) & set(mask_suffixes):
        raise ValueError(f'images and masks share the folder {img_dir}: their suffixes '
                         f'{img_suffixes} and {mask_suffixes} must differ')
    masks = _index_mask_files(mask_dir, mask_suffixes, naming, recursive)
    pairs, seen = [], {}
    for path in scan_files(img_dir, img_suffixes, recursive):
        stem = strip_suffix(path.relative_to(img_dir).as_posix(), img_suffixes)
        if stem in seen:
            raise ValueError(f'images {seen[stem]} and {path} share the stem {stem!r}: '
                             'their masks would be ambiguous')
        seen[stem] = path
        if stem in masks:
            pairs.append((path, [(str(k), p) for k, p in sorted(masks[stem])], stem))
    return pairs


def _index_mask_files(mask_dir: Path, mask_suffixes: Tuple[str, ...], naming: str,
                      recursive: bool) -> Dict[str, List[Tuple[int, Path]]]:
    """Relative image stem -> [(instance index, mask path), ...]."""
    masks: Dict[str, List[Tuple[int, Path]]] = {}
    for path in scan_files(mask_dir, mask_suffixes, recursive):
        stem = strip_suffix(path.relative_to(mask_dir).as_posix(), mask_suffixes)
        index = 0
        if naming == 'indexed':
            match = re.fullmatch(r'(.+)_(\d+)', stem)
            if match is None:
                continue  # not an instance file of this naming rule
            stem, index = match.group(1), int(match.group(2))
        masks.setdefault(stem, []).append((index, path))
    return masks
