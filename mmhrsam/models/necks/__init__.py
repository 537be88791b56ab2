"""Necks: modules between an encoder's features and a decode head."""
from .multi_stage_fusion import MultiStageFusionNeck
from .simple_feature_pyramid import SimpleFeaturePyramid

__all__ = ['MultiStageFusionNeck', 'SimpleFeaturePyramid']
