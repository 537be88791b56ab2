"""Image + mask folders: user data, and GrabCut / Berkeley as configurations of it.

Generic layout (``naming='same_stem'``: one object per image)::

    data_root/
      images/a.jpg  images/sub/b.png ...
      masks/a.png   masks/sub/b.png  ...      # same relative path, mask suffix

or (``naming='indexed'``: several objects per image, one file each)::

      masks/a_0.png  masks/a_1.png  masks/sub/b_0.png ...

A mask pixel is foreground when its value is ``> fg_threshold``; values listed in
``ignore_values`` become 255 (ignore). Palette PNGs give their indices, colour masks the
max over channels (see :mod:`mmhrsam.datasets.io`). Images without a mask are skipped.

GrabCut (RITM's copy: 50 images)::

    GrabCut/
      data_GT/*.jpg|*.bmp
      boundary_GT/*.bmp          # 255 object, 128 unknown band, 0 background

Berkeley (RITM's copy: 96 instances)::

    Berkeley/
      images/*.jpg
      masks/*.png                # 255 object, 0 background

Both follow RITM's reader (``isegm/data/datasets/grabcut.py``; Berkeley subclasses it):
value 128 is ignore (255 here), values > 128 are the object.
"""
from __future__ import annotations

import os.path as osp
from typing import List, Sequence, Union

import numpy as np

from mmhrsam.registry import DATASETS
from .base import BaseInteractiveDataset
from .io import binarize_mask, pair_images_and_masks, read_mask, stack_masks

#: Image suffixes looked for by default (case-insensitive).
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def folder_infos(img_dir: str, mask_dir: str, img_suffix: Union[str, Sequence[str]],
                 mask_suffix: Union[str, Sequence[str]], naming: str = 'same_stem',
                 recursive: bool = False, id_prefix: str = '') -> List[dict]:
    """Data infos of an image folder and its mask folder (see
    :func:`mmhrsam.datasets.io.pair_images_and_masks`); ``img_id`` is
    ``id_prefix + relative stem``."""
    infos = []
    for img_path, masks, stem in pair_images_and_masks(img_dir, mask_dir, img_suffix,
                                                       mask_suffix, naming, recursive):
        infos.append(dict(img_id=id_prefix + stem, img_path=str(img_path),
                          instances=[dict(instance_id=k, mask_path=str(p)) for k, p in masks]))
    return infos


@DATASETS.register_module()
class FolderDataset(BaseInteractiveDataset):
    """Images with binary (or thresholded) object masks in a parallel folder.

    Args:
        data_root (str): dataset root; relative ``img_dir``/``mask_dir`` are joined to it.
        img_dir (str): image folder.
        mask_dir (str): mask folder (may equal ``img_dir`` when the suffixes differ).
        img_suffix (str | Sequence[str]): image file suffix(es).
        mask_suffix (str | Sequence[str]): mask file suffix(es).
        naming (str): ``'same_stem'`` (one mask per image) or ``'indexed'``
            (``<stem>_<k><mask_suffix>``, one file per object).
        fg_threshold (float): mask values ``> fg_threshold`` are foreground; 0 for 0/1 or
            0/255 masks, 127 for anti-aliased or lossy masks.
        ignore_values (Sequence[int]): raw values marked ignore (255).
        recursive (bool): also scan sub-folders (the relative path is part of the id).
        **kwargs: :class:`BaseInteractiveDataset` arguments (``pipeline``, ``test_mode``, ...).
    """

    def __init__(self,
                 data_root: str = '',
                 img_dir: str = 'images',
                 mask_dir: str = 'masks',
                 img_suffix: Union[str, Sequence[str]] = IMAGE_SUFFIXES,
                 mask_suffix: Union[str, Sequence[str]] = '.png',
                 naming: str = 'same_stem',
                 fg_threshold: float = 0,
                 ignore_values: Sequence[int] = (),
                 recursive: bool = False,
                 **kwargs):
        self.img_dir = osp.join(data_root, img_dir)
        self.mask_dir = osp.join(data_root, mask_dir)
        self.img_suffix = img_suffix
        self.mask_suffix = mask_suffix
        self.naming = naming
        self.fg_threshold = fg_threshold
        self.ignore_values = tuple(ignore_values)
        self.recursive = recursive
        super().__init__(data_root=data_root, **kwargs)

    def load_image_infos(self) -> List[dict]:
        return folder_infos(self.img_dir, self.mask_dir, self.img_suffix, self.mask_suffix,
                            self.naming, self.recursive)

    def read_masks(self, info: dict) -> np.ndarray:
        paths = [inst['mask_path'] for inst in info['instances']]
        masks = [binarize_mask(read_mask(p), self.fg_threshold, self.ignore_values)
                 for p in paths]
        return stack_masks(masks, paths)  # (N, H, W)


@DATASETS.register_module()
class GrabCutDataset(FolderDataset):
    """GrabCut: ``data_GT/`` images, ``boundary_GT/*.bmp`` masks with a 128 unknown band
    (ignore), > 128 object.

    Args:
        data_root (str): the ``GrabCut`` folder.
        **kwargs: :class:`BaseInteractiveDataset` arguments.
    """

    def __init__(self, data_root: str = '', **kwargs):
        super().__init__(data_root=data_root, img_dir='data_GT', mask_dir='boundary_GT',
                         img_suffix=('.jpg', '.bmp', '.png'), mask_suffix=('.bmp', '.png'),
                         fg_threshold=128, ignore_values=(128,), **kwargs)


@DATASETS.register_module()
class BerkeleyDataset(FolderDataset):
    """Berkeley: ``images/*.jpg`` and ``masks/*.png`` (thresholds as GrabCut, as in RITM).

    Args:
        data_root (str): the ``Berkeley`` folder.
        **kwargs: :class:`BaseInteractiveDataset` arguments.
    """

    def __init__(self, data_root: str = '', **kwargs):
        super().__init__(data_root=data_root, img_dir='images', mask_dir='masks',
                         img_suffix=('.jpg', '.png'), mask_suffix='.png',
                         fg_threshold=128, ignore_values=(128,), **kwargs)
