"""Necks: modules between an encoder's features and a decode head."""
from .simple_feature_pyramid import SimpleFeaturePyramid

__all__ = ['SimpleFeaturePyramid']
