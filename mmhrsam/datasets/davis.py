"""DAVIS-345, the interactive-segmentation split of DAVIS (RITM/SimpleClick release).

Layout::

    DAVIS/
      img/bear_00000.jpg ...     # 345 images (one object each)
      gt/bear_00000.png ...      # same stem; 0 background, object non-zero

Threshold as RITM's reader (``isegm/data/datasets/davis.py``): max over channels, any
value > 0 is the object (the released masks are 0/255; pass ``fg_threshold=127`` to be
robust to anti-aliased masks).
"""
from __future__ import annotations

from mmhrsam.registry import DATASETS
from .folder import IMAGE_SUFFIXES, FolderDataset


@DATASETS.register_module()
class DavisDataset(FolderDataset):
    """DAVIS-345: ``img/*.jpg`` with ``gt/*.png`` masks of the same stem.

    Args:
        data_root (str): the ``DAVIS`` folder.
        fg_threshold (float): gt values above it are the object.
        **kwargs: :class:`BaseInteractiveDataset` arguments.
    """

    def __init__(self, data_root: str = '', fg_threshold: float = 0, **kwargs):
        super().__init__(data_root=data_root, img_dir='img', mask_dir='gt',
                         img_suffix=IMAGE_SUFFIXES, mask_suffix='.png',
                         fg_threshold=fg_threshold, **kwargs)
