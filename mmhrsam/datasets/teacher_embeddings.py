"""Stored teacher embeddings for distillation (docs/architecture.md).

``tools/extract_teacher_embeddings.py`` runs a SAM image encoder once over a dataset and
writes, into one directory:

* ``<file>.npy``: the float16 (256, h, w) embedding of one image (h = w = target_size / 16),
  where ``<file>`` is :func:`embedding_file_name` of the image's ``img_id``;
* ``manifest.json`` (:data:`MANIFEST_NAME`), written atomically::

    {"format": "mmhrsam-teacher-embeddings", "version": 1,
     "teacher": {"name", "checkpoint", "checkpoint_sha1", "checkpoint_size"},
     "preprocessing": {"target_size", "mean", "std", "bgr_input", "resize"},
     "images": {img_id: {"img_id", "file", "img_path", "ori_shape": [H, W],
                         "image_sha1", "embedding_shape", "embedding_dtype"}}}

``image_sha1`` is :func:`image_checksum` of the decoded RGB uint8 image, so a stored
embedding is only used for the very pixels it was computed from.

Named intermediate teacher features (progressive distillation; ``--features`` of the tool)
are optional additions to the same format: the manifest lists them in ``"features"`` (a
manifest without the key stores none), each is one float16 (C, h, w) file per image under
``<feature name>/<file>`` (:func:`feature_file_name`), and each image record gets
``"features": {name: {"file", "shape", "dtype"}}``.

:class:`LoadTeacherEmbedding` reads them in a training pipeline and never recomputes: every
inconsistency is an error that says how to regenerate (the original implementation
silently recomputed missing targets with the student itself).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmhrsam.registry import TRANSFORMS
from .transforms import PackInteractiveInputs

MANIFEST_NAME = 'manifest.json'
MANIFEST_FORMAT = 'mmhrsam-teacher-embeddings'
MANIFEST_VERSION = 1
EMBEDDING_DTYPE = 'float16'
#: The resize / pad rule of :func:`mmhrsam.apis.predictor.preprocess_image`, recorded in the
#: manifest; change it when that function's behaviour changes so old embeddings are refused.
RESIZE_RULE = ('long side to target_size, each side int(side * scale + 0.5); bilinear antialiased '
               'resampling of float32 [0, 255] intensities; optional RGB->BGR flip; (x - mean) / std; '
               'zero padding bottom/right to a target_size square')
PREPROCESSING_KEYS = ('target_size', 'mean', 'std', 'bgr_input')
REGENERATE_HINT = ('regenerate with `python tools/extract_teacher_embeddings.py CONFIG --teacher TEACHER '
                   '--out {dir}` (resumable: only missing or changed images are computed)')

_SAFE_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,119}')


# ---------------------------------------------------------------------- helpers
def image_checksum(image: np.ndarray) -> str:
    """SHA-1 (hex) of a decoded (H, W, 3) uint8 RGB image.

    The digest covers a ``'{H}x{W}x3:uint8:'`` header and the C-ordered pixel bytes, so
    equal bytes in another shape do not collide.

    Raises:
        ValueError: ``image`` is not an (H, W, 3) uint8 array.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f'{image.dtype} {image.shape}' if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f'image checksums are defined on (H, W, 3) uint8 RGB images, got {desc}')
    digest = hashlib.sha1(f'{image.shape[0]}x{image.shape[1]}x3:uint8:'.encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def file_sha1(path: str, chunk_size: int = 1 << 22) -> str:
    """SHA-1 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_size), b''):
            digest.update(chunk)
    return digest.hexdigest()


def embedding_file_name(img_id: str) -> str:
    """A safe, unique ``.npy`` file name for ``img_id``.

    Ids of at most 120 characters from ``[A-Za-z0-9._-]`` that start with a letter or digit
    are used as they are (``'000000123' -> '000000123.npy'``). Any other id (slashes,
    spaces, a leading dot, non-ASCII, too long) becomes its sanitized form (other characters
    replaced by ``_``, cut to 80 characters) followed by ``-`` and the first 12 hex digits of
    the id's SHA-1, so distinct ids stay distinct: ``'DIS5K/a b.jpg' -> 'DIS5K_a_b.jpg-<sha>.npy'``.
    """
    img_id = str(img_id)
    if _SAFE_NAME.fullmatch(img_id):
        return f'{img_id}.npy'
    safe = re.sub(r'[^A-Za-z0-9._-]+', '_', img_id).strip('._-')[:80] or 'img'
    return f'{safe}-{hashlib.sha1(img_id.encode("utf-8")).hexdigest()[:12]}.npy'


def feature_file_name(name: str, img_id: str) -> str:
    """Path, relative to the embedding directory, of feature ``name`` of ``img_id``: one folder
    per feature, so feature files never collide with embedding files.

    Raises:
        ValueError: ``name`` is not a safe folder name (e.g. ``'blocks.7'`` is).
    """
    if not _SAFE_NAME.fullmatch(name):
        raise ValueError(f'feature name {name!r} must be 1-120 characters of [A-Za-z0-9._-], starting with a '
                         'letter or digit')
    return f'{name}/{embedding_file_name(img_id)}'


def preprocessing_record(target_size: int, mean: Sequence[float], std: Sequence[float],
                         bgr_input: bool) -> dict:
    """The manifest's ``preprocessing`` entry (JSON types, plus :data:`RESIZE_RULE`)."""
    return dict(target_size=int(target_size), mean=[float(v) for v in mean], std=[float(v) for v in std],
                bgr_input=bool(bgr_input), resize=RESIZE_RULE)


def preprocessing_differences(expected: dict, recorded: dict) -> List[str]:
    """Human-readable differences between an expected preprocessing and a manifest's.

    Only the keys of ``expected`` are compared (a subset of :data:`PREPROCESSING_KEYS`);
    the resize rule is always compared with :data:`RESIZE_RULE`.
    """
    diffs = []
    for key in expected:
        want, got = expected[key], recorded.get(key)
        if key in ('mean', 'std'):
            same = got is not None and len(got) == len(want) and all(
                math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(want, got))
        elif key == 'bgr_input':
            same = got is not None and bool(got) == bool(want)
        else:
            same = got == want
        if not same:
            diffs.append(f'{key}: expected {want}, embeddings made with {got}')
    if recorded.get('resize') != RESIZE_RULE:
        diffs.append(f'resize rule: expected {RESIZE_RULE!r}, embeddings made with {recorded.get("resize")!r}')
    return diffs


# ---------------------------------------------------------------------- manifest IO
def new_manifest(teacher: dict, preprocessing: dict, features: Sequence[str] = ()) -> dict:
    """An empty manifest for ``teacher`` (name/checkpoint record) and ``preprocessing``; with
    ``features``, the names of the intermediate features stored besides each embedding."""
    manifest = dict(format=MANIFEST_FORMAT, version=MANIFEST_VERSION, teacher=dict(teacher),
                    preprocessing=dict(preprocessing), images={})
    if features:
        manifest['features'] = [str(name) for name in features]
    return manifest


def read_manifest(embedding_dir: str) -> dict:
    """Read and check ``<embedding_dir>/manifest.json``.

    Raises:
        FileNotFoundError: no manifest.
        RuntimeError: not a manifest of this format and version.
    """
    path = os.path.join(embedding_dir, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no teacher-embedding manifest {path}: the directory holds no extracted '
                                f'embeddings; ' + REGENERATE_HINT.format(dir=embedding_dir))
    with open(path, encoding='utf-8') as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as err:
            raise RuntimeError(f'{path} is not valid JSON ({err}); '
                               + REGENERATE_HINT.format(dir=embedding_dir)) from err
    if not isinstance(manifest, dict) or manifest.get('format') != MANIFEST_FORMAT \
            or manifest.get('version') != MANIFEST_VERSION or not isinstance(manifest.get('images'), dict):
        raise RuntimeError(f'{path} is not a version-{MANIFEST_VERSION} {MANIFEST_FORMAT} manifest; '
                           + REGENERATE_HINT.format(dir=embedding_dir))
    return manifest


def _atomic_write(path: str, write) -> None:
    """Write through ``write(file)`` into a temporary file next to ``path``, then rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows: readers see the old or the new file
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_manifest(embedding_dir: str, manifest: dict) -> None:
    """Write ``manifest`` atomically to ``<embedding_dir>/manifest.json``."""
    data = json.dumps(manifest, indent=1, sort_keys=True).encode('utf-8')
    _atomic_write(os.path.join(embedding_dir, MANIFEST_NAME), lambda f: f.write(data))


def save_embedding(embedding_dir: str, file_name: str, embedding: np.ndarray) -> None:
    """Write one float16 embedding (or feature) atomically as ``<embedding_dir>/<file_name>``;
    ``file_name`` may name a sub-folder (:func:`feature_file_name`), created if needed."""
    if embedding.dtype != np.float16:
        raise ValueError(f'embeddings are stored as float16, got {embedding.dtype}')
    os.makedirs(os.path.dirname(os.path.join(embedding_dir, file_name)), exist_ok=True)
    _atomic_write(os.path.join(embedding_dir, file_name), lambda f: np.save(f, embedding, allow_pickle=False))


def image_entry(img_id: str, img_path: Optional[str], image_sha1: str, ori_shape: Sequence[int],
                embedding: np.ndarray, features: Optional[Dict[str, np.ndarray]] = None) -> dict:
    """The manifest's record of one image (with ``features``: their files, shapes and dtypes)."""
    entry = dict(img_id=str(img_id), file=embedding_file_name(img_id), img_path=img_path,
                 ori_shape=[int(v) for v in ori_shape], image_sha1=image_sha1,
                 embedding_shape=[int(v) for v in embedding.shape], embedding_dtype=str(embedding.dtype))
    if features:
        entry['features'] = {name: dict(file=feature_file_name(name, img_id), shape=[int(v) for v in f.shape],
                                        dtype=str(f.dtype)) for name, f in features.items()}
    return entry


# ---------------------------------------------------------------------- transform
@TRANSFORMS.register_module()
class LoadTeacherEmbedding(BaseTransform):
    """Load the stored teacher embedding of ``results['img_id']`` into ``results['teacher_embedding']``.

    Place it **first in the pipeline**, right after the dataset has loaded the image:
    ``results['img']`` must still be the decoded image exactly as loaded (before any resize,
    crop, flip or colour change), because its checksum is compared with the one recorded at
    extraction. The embedding is an ``np.float16`` array (256, h, w).

    Nothing is ever recomputed. The manifest is read and checked once per process (at the
    first call, so each dataloader worker reads it once); then, per sample:

    * no ``manifest.json`` or no file of the sample: ``FileNotFoundError``;
    * preprocessing differing from ``preprocessing``, ``img_id`` absent from the manifest,
      image checksum or embedding shape/dtype differing from the record: ``RuntimeError``.

    Each message names the problem and how to regenerate the embeddings.

    Args:
        embedding_dir (str): directory written by ``tools/extract_teacher_embeddings.py``.
        preprocessing (dict, optional): expected ``target_size``, ``mean``, ``std``,
            ``bgr_input`` (any subset) of the student's input pipeline; None skips that check.
        channel_order (str): ``'rgb'`` (mmhrsam datasets) or ``'bgr'`` (e.g. mmcv's
            ``LoadImageFromFile``): the order of ``results['img']``, flipped to RGB for the checksum.
        verify_checksum (bool): compare the image checksum (one SHA-1 of the image per sample).
        features (Sequence[str]): stored intermediate teacher features to load as well, into
            ``results['teacher_features'][name]`` (float16 (C, h, w)); the manifest must list
            them. Pack with :class:`PackDistillationInputs` to keep them.
    """

    def __init__(self,
                 embedding_dir: str,
                 preprocessing: Optional[dict] = None,
                 channel_order: str = 'rgb',
                 verify_checksum: bool = True,
                 features: Sequence[str] = ()):
        if preprocessing is not None:
            unknown = sorted(set(preprocessing) - set(PREPROCESSING_KEYS))
            if unknown:
                raise ValueError(f'unknown preprocessing keys {unknown}; allowed: {list(PREPROCESSING_KEYS)}')
        if channel_order not in ('rgb', 'bgr'):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.embedding_dir = str(embedding_dir)
        self.preprocessing = dict(preprocessing) if preprocessing is not None else None
        self.channel_order = channel_order
        self.verify_checksum = verify_checksum
        self.features = tuple(str(name) for name in features)
        self._images: Optional[Dict[str, dict]] = None

    def _hint(self) -> str:
        return REGENERATE_HINT.format(dir=self.embedding_dir)

    def _load_manifest(self) -> Dict[str, dict]:
        """The manifest's image records, read and checked at the first call only."""
        if self._images is None:
            manifest = read_manifest(self.embedding_dir)
            if self.preprocessing is not None:
                diffs = preprocessing_differences(self.preprocessing, manifest.get('preprocessing', {}))
                if diffs:
                    raise RuntimeError(f'teacher embeddings in {self.embedding_dir} were made with another '
                                       f'preprocessing: {"; ".join(diffs)}; ' + self._hint())
            missing = sorted(set(self.features) - set(manifest.get('features', [])))
            if missing:
                raise RuntimeError(f'teacher features {missing} are not stored in {self.embedding_dir} (it holds '
                                   f'{manifest.get("features", [])}); extract them with --features; ' + self._hint())
            self._images = manifest['images']
        return self._images

    def _check_image(self, img_id: str, entry: dict, image: np.ndarray) -> None:
        if self.channel_order == 'bgr':
            image = image[..., ::-1]
        if list(image.shape[:2]) != list(entry['ori_shape']) or image_checksum(image) != entry['image_sha1']:
            raise RuntimeError(f'image {img_id!r} ({image.shape[1]}x{image.shape[0]}) differs from the image its '
                               f'teacher embedding was computed from ({entry["ori_shape"][1]}x'
                               f'{entry["ori_shape"][0]}, checksum mismatch): the dataset changed, or '
                               f'LoadTeacherEmbedding is not first in the pipeline; ' + self._hint())

    def transform(self, results: dict) -> dict:
        """Args:
            results (dict): needs ``img_id`` and, with ``verify_checksum``, ``img``.

        Returns:
            dict: ``results`` with ``teacher_embedding`` added.
        """
        images = self._load_manifest()
        if 'img_id' not in results:
            raise RuntimeError('LoadTeacherEmbedding needs results["img_id"] (set by mmhrsam datasets)')
        img_id = str(results['img_id'])
        entry = images.get(img_id)
        if entry is None:
            raise RuntimeError(f'no teacher embedding for image {img_id!r} in {self.embedding_dir} '
                               f'({len(images)} images): extracted for another dataset or not finished; '
                               + self._hint())
        if self.verify_checksum:
            self._check_image(img_id, entry, results['img'])
        results['teacher_embedding'] = self._load_array(
            img_id, 'embedding', entry['file'], entry['embedding_shape'], entry['embedding_dtype'])
        if self.features:
            stored = entry.get('features', {})
            missing = [name for name in self.features if name not in stored]
            if missing:
                raise RuntimeError(f'no teacher features {missing} recorded for image {img_id!r} in '
                                   f'{self.embedding_dir}; ' + self._hint())
            results['teacher_features'] = {
                name: self._load_array(img_id, f'feature {name!r}', stored[name]['file'], stored[name]['shape'],
                                       stored[name]['dtype']) for name in self.features}
        return results

    def _load_array(self, img_id: str, what: str, file: str, shape: Sequence[int], dtype: str) -> np.ndarray:
        """One stored array, checked against its manifest record."""
        path = os.path.join(self.embedding_dir, file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'teacher {what} file {path} of image {img_id!r} is missing; ' + self._hint())
        array = np.load(path, allow_pickle=False)
        if list(array.shape) != list(shape) or str(array.dtype) != dtype:
            raise RuntimeError(f'teacher {what} {path} has shape {array.shape} {array.dtype}, the manifest '
                               f'records {tuple(shape)} {dtype}; ' + self._hint())
        return array

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(embedding_dir={self.embedding_dir!r}, preprocessing={self.preprocessing}, '
                f'channel_order={self.channel_order!r}, verify_checksum={self.verify_checksum}, '
                f'features={list(self.features)})')


@TRANSFORMS.register_module()
class PackDistillationInputs(PackInteractiveInputs):
    """:class:`PackInteractiveInputs` that also keeps ``results['teacher_features']`` (loaded by
    ``LoadTeacherEmbedding(features=...)``) as the sample's ``teacher_features``, a dict of
    (C, h, w) tensors, for :class:`mmhrsam.models.ProgressiveDistiller`.

    Args:
        meta_keys (Sequence[str]): as :class:`PackInteractiveInputs`.
    """

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        if results.get('teacher_features') is not None:
            packed['data_samples'].teacher_features = {
                name: torch.as_tensor(feature) for name, feature in results['teacher_features'].items()}
        return packed
