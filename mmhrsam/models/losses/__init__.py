"""Training losses."""
from .normalized_focal_loss import NormalizedFocalLoss

__all__ = ['NormalizedFocalLoss']
