"""HQSeg-44K (SAM-HQ's training/validation collection), in SAM-HQ's layout.

Layout (``data_root`` = SAM-HQ's ``train/data``, downloaded from the sam-hq-training
Hugging Face repository)::

    data/
      DIS5K/DIS-TR/{im/*.jpg, gt/*.png}          DIS5K/DIS-VD/{im, gt}
      cascade_psp/
        DUTS-TR/  DUTS-TE/  ecssd/  MSRA_10K/     # x.jpg next to x.png
        fss_all/                                  # x.jpg next to x.png (also <class>/ sub-folders)
      thin_object_detection/
        ThinObject5K/{images_train, masks_train, images_test, masks_test}
        COIFT/{images, masks}
        HRSOD/{images, masks_max255}

Subsets are the entries of :data:`HQSEG44K_SUBSETS` (folder names and suffixes as in
SAM-HQ's ``train/train.py``). The validation split is the paper's 1,537 validation images: DIS5K-VD
470, COIFT 280, HRSOD 287, ThinObject5K-TE 500. GT > 0 is foreground (docs/evaluation_protocol.md).
"""
from __future__ import annotations

import logging
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.logging import print_log

from mmhrsam.registry import DATASETS
from .folder import FolderDataset, folder_infos


def _subset(split: str, img_dir: str, mask_dir: str, num_images: Optional[int] = None,
            recursive: bool = False) -> dict:
    return dict(split=split, img_dir=img_dir, mask_dir=mask_dir, img_suffix='.jpg',
                mask_suffix='.png', num_images=num_images, recursive=recursive)


#: name -> split, folders relative to ``data_root``, suffixes, expected image count.
HQSEG44K_SUBSETS = {
    'DIS5K-TR': _subset('train', 'DIS5K/DIS-TR/im', 'DIS5K/DIS-TR/gt'),
    'ThinObject5K-TR': _subset('train', 'thin_object_detection/ThinObject5K/images_train',
                               'thin_object_detection/ThinObject5K/masks_train'),
    # SAM-HQ's copy is flat; the original FSS-1000 has <class>/<n>.jpg sub-folders.
    'FSS-1000': _subset('train', 'cascade_psp/fss_all', 'cascade_psp/fss_all', recursive=True),
    'DUTS-TR': _subset('train', 'cascade_psp/DUTS-TR', 'cascade_psp/DUTS-TR'),
    'DUTS-TE': _subset('train', 'cascade_psp/DUTS-TE', 'cascade_psp/DUTS-TE'),
    'ECSSD': _subset('train', 'cascade_psp/ecssd', 'cascade_psp/ecssd'),
    'MSRA-10K': _subset('train', 'cascade_psp/MSRA_10K', 'cascade_psp/MSRA_10K'),
    'DIS5K-VD': _subset('val', 'DIS5K/DIS-VD/im', 'DIS5K/DIS-VD/gt', 470),
    'COIFT': _subset('val', 'thin_object_detection/COIFT/images',
                     'thin_object_detection/COIFT/masks', 280),
    'HRSOD': _subset('val', 'thin_object_detection/HRSOD/images',
                     'thin_object_detection/HRSOD/masks_max255', 287),
    'ThinObject5K-TE': _subset('val', 'thin_object_detection/ThinObject5K/images_test',
                               'thin_object_detection/ThinObject5K/masks_test', 500),
}


def resolve_subsets(split: str, subsets: Optional[Sequence[str]]) -> List[str]:
    """Subset names to read: ``subsets`` (validated), or every subset of ``split``."""
    if split not in ('train', 'val'):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if subsets is None:
        return [name for name, cfg in HQSEG44K_SUBSETS.items() if cfg['split'] == split]
    unknown = [name for name in subsets if name not in HQSEG44K_SUBSETS]
    if unknown:
        raise ValueError(f'unknown HQSeg-44K subsets {unknown}; known: {list(HQSEG44K_SUBSETS)}')
    return list(subsets)


@DATASETS.register_module()
class HQSeg44KDataset(FolderDataset):
    """HQSeg-44K subsets, one object per image (``img_id`` = ``'<subset>/<stem>'``).

    Args:
        data_root (str): SAM-HQ's ``data`` folder.
        split (str): ``'train'`` or ``'val'``; selects the default subsets.
        subsets (Sequence[str], optional): names from :data:`HQSEG44K_SUBSETS`; all
            subsets of ``split`` when None.
        fg_threshold (float): GT values above it are foreground (0: GT > 0).
        **kwargs: :class:`BaseInteractiveDataset` arguments.
    """

    def __init__(self,
                 data_root: str = '',
                 split: str = 'val',
                 subsets: Optional[Sequence[str]] = None,
                 fg_threshold: float = 0,
                 **kwargs):
        self.split = split
        self.subsets = resolve_subsets(split, subsets)
        super().__init__(data_root=data_root, img_dir='', mask_dir='', img_suffix='.jpg',
                         mask_suffix='.png', fg_threshold=fg_threshold, **kwargs)

    def load_image_infos(self) -> List[dict]:
        infos = []
        for name in self.subsets:
            cfg = HQSEG44K_SUBSETS[name]
            subset = folder_infos(osp.join(self.data_root, cfg['img_dir']),
                                  osp.join(self.data_root, cfg['mask_dir']),
                                  cfg['img_suffix'], cfg['mask_suffix'],
                                  recursive=cfg['recursive'], id_prefix=f'{name}/')
            if cfg['num_images'] is not None and len(subset) != cfg['num_images']:
                print_log(f'HQSeg-44K {name}: found {len(subset)} image/mask pairs, expected '
                          f'{cfg["num_images"]} (incomplete download?)', logger='current',
                          level=logging.WARNING)
            infos.extend(subset)
        return infos
