"""Optimizer-wrapper constructors."""
from .layer_decay_constructor import (NO_DECAY_NAMES, BackboneLayout, LayerDecayOptimWrapperConstructor,
                                      find_backbone_layout, no_weight_decay)

__all__ = ['NO_DECAY_NAMES', 'BackboneLayout', 'LayerDecayOptimWrapperConstructor', 'find_backbone_layout',
           'no_weight_decay']
