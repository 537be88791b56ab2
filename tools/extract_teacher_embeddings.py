"""Extract teacher (SAM ViT) image embeddings of a dataset for distillation (docs/architecture.md).

Usage::

    python tools/extract_teacher_embeddings.py CONFIG --teacher sam_vit_h \\
        --checkpoint sam_vit_h_4b8939.pth --out data/teacher/sam_vit_h [--device cuda] \\
        [--batch-size 4] [--num-workers 4] [--target-size 1024] [--bgr-input | --no-bgr-input] \\
        [--features blocks.7 blocks.15 ...] [--cfg-options KEY=VALUE ...]

``CONFIG`` is a training config (its ``train_dataloader.dataset`` is used) or a config with
a top-level ``dataset``; the dataset comes from ``mmhrsam.registry.DATASETS`` and must
offer ``get_data_info(index)['img_id']`` and ``load_image(index)`` -> (H, W, 3) uint8 RGB.
Concatenated / repeated datasets (``datasets`` / ``dataset`` attributes) are walked. Each
unique ``img_id`` is processed once.

Preprocessing is the training one (:func:`mmhrsam.apis.predictor.preprocess_image`): long
side resized to ``--target-size``, normalized, zero-padded. Mean, std and channel order
come from the config's ``model.data_preprocessor`` (``mean``/``std``, ``bgr_input`` or
MMEngine's ``rgb_to_bgr``), else its ``predictor`` dict (``bgr_input``), else the training recipe's
statistics in RGB order; ``--bgr-input`` / ``--no-bgr-input`` override the channel order.

``--teacher`` is ``sam_vit_h``, ``sam_vit_l`` or ``sam_vit_b`` (segment_anything's image
encoder; ``--checkpoint`` is then the official SAM checkpoint and is required), or a config
file whose ``model`` is any registered encoder (``model.backbone`` when there is one, e.g.
``configs/baselines/sam_vit-h.py``) whose forward returns the embedding (a tensor, or a
tuple whose last element it is). ``--checkpoint`` is then optional: a state dict in the
model's layout, possibly prefixed ``backbone.`` or ``image_encoder.``.

Output (see :mod:`mmhrsam.datasets.teacher_embeddings`): one float16 ``.npy`` per image and
``manifest.json``. ``--features`` adds the outputs of named teacher sub-modules (e.g. SAM ViT
blocks ``blocks.7``) as float16 (C, h, w) files under ``<out>/<name>/``, for progressive
distillation; a directory keeps the feature list it was started with. Runs are resumable:
images whose manifest record, checksum and files are intact are skipped; the manifest is
rewritten atomically every ``--save-every`` images and at the end (also after an error or
Ctrl-C).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import DictAction
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

# Run from a checkout without installing the package (as the other tools do).
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))
from mmhrsam.structures.image_geometry import preprocess_image  # noqa: E402
from mmhrsam.datasets.teacher_embeddings import (  # noqa: E402
    embedding_file_name, feature_file_name, file_sha1, image_checksum, image_entry, new_manifest,
    preprocessing_differences, preprocessing_record, read_manifest, save_embedding, write_manifest)
from mmhrsam.models.segmentors.progressive_distiller import forward_with_features  # noqa: E402

#: --teacher names of segment_anything's encoders -> keys of ``sam_model_registry``.
SAM_TEACHERS = {'sam_vit_h': 'vit_h', 'sam_vit_l': 'vit_l', 'sam_vit_b': 'vit_b'}
#: docs/architecture.md, "Training recipe" normalization statistics (RGB order).
DEFAULT_MEAN = (123.675, 116.28, 103.53)
DEFAULT_STD = (58.395, 57.12, 57.375)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Extract teacher image embeddings for distillation.')
    parser.add_argument('config', help='training config (train_dataloader.dataset) or dataset config (dataset)')
    parser.add_argument('--teacher', required=True,
                        help=f'{", ".join(SAM_TEACHERS)} or a model config file of a registered encoder')
    parser.add_argument('--checkpoint', help='teacher weights (required for the segment_anything teachers)')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--num-workers', type=int, default=0, help='image loading/preprocessing workers')
    parser.add_argument('--target-size', type=int, default=1024, help='long side and padded square side')
    parser.add_argument('--bgr-input', action=argparse.BooleanOptionalAction, default=None,
                        help='feed BGR-ordered channels (default: from the config)')
    parser.add_argument('--save-every', type=int, default=200, help='rewrite the manifest every N images')
    parser.add_argument('--features', nargs='+', default=[], metavar='MODULE',
                        help='also store the outputs of these teacher sub-modules (e.g. blocks.7 blocks.15)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries, e.g. train_dataloader.dataset.num_images=64')
    return parser


# ---------------------------------------------------------------------- config and dataset
def load_config(path: str, options: Optional[dict] = None):
    """The config with ``options`` merged and its default scope set (mmhrsam unless it says otherwise)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(options or {})
    init_default_scope(cfg.get('default_scope') or 'mmhrsam')
    return cfg


def build_dataset(cfg):
    """``train_dataloader.dataset`` (or a top-level ``dataset``) built by mmhrsam's DATASETS."""
    import mmhrsam.datasets  # noqa: F401  (registers the datasets)
    from mmhrsam.registry import DATASETS
    loader = cfg.get('train_dataloader')
    dataset_cfg = loader.get('dataset') if loader else cfg.get('dataset')
    if dataset_cfg is None:
        raise ValueError('the config has neither train_dataloader.dataset nor dataset')
    return DATASETS.build(dataset_cfg)


def resolve_preprocessing(cfg, target_size: int, bgr_input: Optional[bool]) -> dict:
    """The manifest's preprocessing record from the config and the command line (module docstring)."""
    model = cfg.get('model') or {}
    data_pre = model.get('data_preprocessor') or {}
    mean = data_pre.get('mean', DEFAULT_MEAN)
    std = data_pre.get('std', DEFAULT_STD)
    if bgr_input is None:
        for source in (data_pre, cfg.get('predictor') or {}):
            if 'bgr_input' in source or 'rgb_to_bgr' in source:
                bgr_input = bool(source.get('bgr_input', source.get('rgb_to_bgr')))
                break
    return preprocessing_record(target_size, mean, std, bool(bgr_input))


class ImageRef(NamedTuple):
    """One unique image: the (sub-)dataset holding it and its index there."""
    dataset: object
    index: int
    img_id: str
    img_path: Optional[str]


def unique_images(dataset) -> List[ImageRef]:
    """Unique images of ``dataset`` in order, walking concatenated / wrapped datasets."""
    seen: Dict[str, ImageRef] = {}
    stack = [dataset]
    while stack:
        ds = stack.pop(0)
        if not hasattr(ds, 'load_image'):
            inner = getattr(ds, 'datasets', None) or [getattr(ds, 'dataset', None)]
            if inner == [None]:
                raise TypeError(f'{type(ds).__name__} has no load_image(index) method')
            stack[:0] = list(inner)
            continue
        for index in range(len(ds)):
            info = ds.get_data_info(index)
            img_id = str(info['img_id'])
            seen.setdefault(img_id, ImageRef(ds, index, img_id, info.get('img_path')))
    return list(seen.values())


# ---------------------------------------------------------------------- teacher
def _strip_prefix(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Keep the encoder's keys of a project (``backbone.``) or SAM (``image_encoder.``) checkpoint."""
    for prefix in ('backbone.', 'image_encoder.'):
        if any(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


def build_config_teacher(config_path: str, checkpoint: Optional[str]) -> nn.Module:
    """The encoder of a model config (``model.backbone`` if present, else ``model``)."""
    from mmengine.config import Config
    from mmhrsam.registry import build_model
    from mmhrsam.utils.checkpoint import extract_state_dict, load_checkpoint_file
    model_cfg = Config.fromfile(config_path).get('model')
    if model_cfg is None:
        raise ValueError(f'teacher config {config_path} has no `model`')
    encoder = build_model(model_cfg.get('backbone', model_cfg))
    if checkpoint is not None:
        state_dict = _strip_prefix(extract_state_dict(load_checkpoint_file(checkpoint)))
        encoder.load_state_dict(state_dict, strict=True)
    elif any(getattr(m, 'init_cfg', None) for m in encoder.modules()):
        encoder.init_weights()  # e.g. a Pretrained init_cfg
    else:
        warnings.warn(f'teacher {config_path} has no checkpoint and no init_cfg: its weights are random')
    return encoder


def build_teacher(name: str, checkpoint: Optional[str], target_size: int) -> Tuple[nn.Module, dict]:
    """The teacher encoder and its manifest record (name, checkpoint path, SHA-1 and size)."""
    if name in SAM_TEACHERS:
        if checkpoint is None:
            raise ValueError(f'--teacher {name} needs --checkpoint (the official segment_anything weights)')
        from segment_anything import sam_model_registry
        encoder = sam_model_registry[SAM_TEACHERS[name]](checkpoint=checkpoint).image_encoder
        if getattr(encoder, 'img_size', target_size) != target_size:
            raise ValueError(f'{name} takes {encoder.img_size}x{encoder.img_size} inputs: use '
                             f'--target-size {encoder.img_size}')
    elif os.path.isfile(name):
        encoder = build_config_teacher(name, checkpoint)
        name = os.path.normpath(name)
    else:
        raise ValueError(f'--teacher must be one of {sorted(SAM_TEACHERS)} or a model config file, got {name!r}')
    record = dict(name=name, checkpoint=os.path.abspath(checkpoint) if checkpoint else None,
                  checkpoint_sha1=file_sha1(checkpoint) if checkpoint else None,
                  checkpoint_size=os.path.getsize(checkpoint) if checkpoint else None)
    return encoder.eval(), record


def run_teacher(teacher: nn.Module, batch: Tensor, features: Sequence[str] = ()) -> Tuple[Tensor, Dict[str, Tensor]]:
    """(B, 3, S, S) -> the (B, C, h, w) embedding (the last element of a tuple output) and the
    outputs of the sub-modules ``features``, each (B, C_name, h, w)."""
    out, feats = forward_with_features(teacher, features, batch)
    if out.dim() != 4 or out.shape[0] != batch.shape[0]:
        raise RuntimeError(f'teacher returned {tuple(out.shape)}, expected ({batch.shape[0]}, C, h, w)')
    return out, feats


# ---------------------------------------------------------------------- extraction
class ImageInputs(Dataset):
    """Loads and checksums each image and, unless its stored embedding is intact,
    preprocesses it (in dataloader workers when ``--num-workers`` > 0).

    Args:
        refs (list[ImageRef]): the unique images.
        done (dict[str, str]): img_id -> image SHA-1 of the intact stored embeddings.
        preprocessing (dict): the manifest's preprocessing record.
    """

    def __init__(self, refs: List[ImageRef], done: Dict[str, str], preprocessing: dict):
        self.refs, self.done, self.preprocessing = refs, done, preprocessing

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, k: int) -> dict:
        ref = self.refs[k]
        image = ref.dataset.load_image(ref.index)
        sha1 = image_checksum(image)  # also checks the (H, W, 3) uint8 contract
        item = dict(img_id=ref.img_id, img_path=ref.img_path, sha1=sha1, ori_shape=image.shape[:2], input=None)
        if self.done.get(ref.img_id) != sha1:
            p = self.preprocessing
            item['input'], _ = preprocess_image(image, p['target_size'], p['mean'], p['std'], p['bgr_input'])
        return item


def open_manifest(out_dir: str, teacher: dict, preprocessing: dict, features: Sequence[str] = ()) -> dict:
    """The existing manifest of ``out_dir`` when it matches the teacher, preprocessing and
    stored features, else a new one."""
    if not os.path.isfile(os.path.join(out_dir, 'manifest.json')):
        return new_manifest(teacher, preprocessing, features)
    manifest = read_manifest(out_dir)
    old = manifest['teacher']
    diffs = preprocessing_differences({k: v for k, v in preprocessing.items() if k != 'resize'},
                                      manifest['preprocessing'])
    diffs += [f'teacher {key}: now {teacher[key]}, stored {old.get(key)}' for key in ('name', 'checkpoint_sha1')
              if teacher[key] != old.get(key)]
    if list(features) != manifest.get('features', []):
        diffs.append(f'features: now {list(features)}, stored {manifest.get("features", [])}')
    if diffs:
        raise RuntimeError(f'{out_dir} holds embeddings made otherwise ({"; ".join(diffs)}): '
                           'use another --out directory, or delete this one to start over')
    return manifest


def _stored_ok(path: str, shape, dtype: str) -> bool:
    """True when ``path`` is an .npy file of ``shape`` and ``dtype`` (reads the header only)."""
    try:
        stored = np.load(path, mmap_mode='r', allow_pickle=False)
    except (OSError, ValueError):
        return False
    return list(stored.shape) == list(shape) and str(stored.dtype) == dtype


def intact_entries(out_dir: str, entries: Dict[str, dict], features: Sequence[str] = ()) -> Dict[str, str]:
    """img_id -> image SHA-1 of the records whose embedding and ``features`` files exist with the
    recorded shapes and dtypes."""
    done = {}
    for img_id, entry in entries.items():
        stored = entry.get('features', {})
        if set(stored) != set(features):
            continue
        files = [(entry['file'], entry['embedding_shape'], entry['embedding_dtype'])]
        files += [(f['file'], f['shape'], f['dtype']) for f in stored.values()]
        if all(_stored_ok(os.path.join(out_dir, file), shape, dtype) for file, shape, dtype in files):
            done[img_id] = entry['image_sha1']
    return done


def to_float16(t: Tensor, what: str, items: List[dict]) -> np.ndarray:
    """A teacher output as a float16 array; an error when it does not fit float16."""
    array = t.float().cpu().half().numpy()
    if not np.isfinite(array).all():
        raise RuntimeError(f'teacher {what} of {[i["img_id"] for i in items]} are not finite in float16')
    return array


def store_batch(teacher: nn.Module, items: List[dict], device: torch.device, out_dir: str, manifest: dict,
                files: Dict[str, str]) -> None:
    """Run the teacher on a batch, write the float16 embeddings (and the manifest's features)
    and their manifest records."""
    batch = torch.cat([item['input'] for item in items]).to(device)
    names = manifest.get('features', [])
    with torch.inference_mode():
        out, feats = run_teacher(teacher, batch, names)
        embeddings = to_float16(out, 'embeddings', items)
        feats = {name: to_float16(f, f'feature {name!r}', items) for name, f in feats.items()}
    for k, (item, embedding) in enumerate(zip(items, embeddings)):
        img_id, name = item['img_id'], embedding_file_name(item['img_id'])
        if files.setdefault(name, img_id) != img_id:
            raise RuntimeError(f'image ids {files[name]!r} and {img_id!r} map to the same file {name}')
        embedding = np.ascontiguousarray(embedding)
        save_embedding(out_dir, name, embedding)
        own = {n: np.ascontiguousarray(f[k]) for n, f in feats.items()}
        for n, feature in own.items():
            save_embedding(out_dir, feature_file_name(n, img_id), feature)
        manifest['images'][img_id] = image_entry(img_id, item['img_path'], item['sha1'], item['ori_shape'],
                                                 embedding, own)


def extract(refs: List[ImageRef], teacher: nn.Module, manifest: dict, out_dir: str, device: torch.device,
            batch_size: int = 1, num_workers: int = 0, save_every: int = 200) -> Dict[str, int]:
    """Compute the missing or outdated embeddings of ``refs``; returns ``computed``/``skipped`` counts."""
    from tqdm import tqdm
    images = manifest['images']
    done = intact_entries(out_dir, {r.img_id: images[r.img_id] for r in refs if r.img_id in images},
                          manifest.get('features', []))
    files = {entry['file']: img_id for img_id, entry in images.items()}
    loader = DataLoader(ImageInputs(refs, done, manifest['preprocessing']), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=list)
    stats, unsaved = dict(computed=0, skipped=0), 0
    bar = tqdm(total=len(refs), unit='img', desc='teacher embeddings')
    try:
        for items in loader:
            todo = [item for item in items if item['input'] is not None]
            if todo:
                store_batch(teacher, todo, device, out_dir, manifest, files)
            stats['computed'] += len(todo)
            stats['skipped'] += len(items) - len(todo)
            unsaved += len(todo)
            if unsaved >= save_every:
                write_manifest(out_dir, manifest)
                unsaved = 0
            bar.update(len(items))
            bar.set_postfix(stats, refresh=False)  # no extra redraw per batch
    finally:  # keep what was computed, also after an error or Ctrl-C
        write_manifest(out_dir, manifest)
        bar.close()
    return stats


def main(argv: Optional[List[str]] = None) -> Dict[str, int]:
    """Command-line entry point; returns the ``computed``/``skipped`` counts."""
    from mmhrsam.structures.image_geometry import check_target_size
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.save_every < 1:
        raise ValueError('--batch-size and --save-every must be >= 1')
    cfg = load_config(args.config, args.cfg_options)
    preprocessing = resolve_preprocessing(cfg, check_target_size(args.target_size), args.bgr_input)
    refs = unique_images(build_dataset(cfg))
    os.makedirs(args.out, exist_ok=True)
    device = torch.device(args.device)
    teacher, record = build_teacher(args.teacher, args.checkpoint, args.target_size)
    manifest = open_manifest(args.out, record, preprocessing, args.features)
    stats = extract(refs, teacher.to(device), manifest, args.out, device, args.batch_size, args.num_workers,
                    args.save_every)
    print(f'{len(refs)} unique images: {stats["computed"]} computed, {stats["skipped"]} already stored; '
          f'manifest {os.path.join(args.out, "manifest.json")}')
    return stats


if __name__ == '__main__':
    main()
