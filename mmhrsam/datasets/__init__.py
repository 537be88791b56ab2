"""Interactive-segmentation datasets and transforms (registered on import).

Importing this package needs OpenCV, Pillow and ``mmcv.transforms`` (mmcv-lite is
enough); COCO-style datasets also need pycocotools, imported on first use.
"""
from .base import BaseInteractiveDataset, build_pipeline
from .coco import CocoInteractiveDataset, CocoPanopticInteractiveDataset
from .davis import DavisDataset
from .folder import BerkeleyDataset, FolderDataset, GrabCutDataset
from .hqseg44k import HQSEG44K_SUBSETS, HQSeg44KDataset
from .io import BadSampleError, read_image, read_mask
from .lvis import LvisInteractiveDataset
from .synthetic import SyntheticHighResDataset, generate_scene
from .transforms import (PackInteractiveInputs, PhotoMetricDistortion, RandomFlip,
                         ResizeLongestSide, SampleObject)
from . import teacher_embeddings  # noqa: F401  (registers its parts)

__all__ = [
    'BaseInteractiveDataset', 'build_pipeline', 'BadSampleError', 'read_image', 'read_mask',
    'CocoInteractiveDataset', 'CocoPanopticInteractiveDataset', 'LvisInteractiveDataset',
    'HQSeg44KDataset', 'HQSEG44K_SUBSETS', 'DavisDataset', 'FolderDataset', 'GrabCutDataset',
    'BerkeleyDataset', 'SyntheticHighResDataset', 'generate_scene', 'SampleObject',
    'ResizeLongestSide', 'PhotoMetricDistortion', 'RandomFlip', 'PackInteractiveInputs',
]
