"""User-facing inference APIs."""
from .predictor import (HRSAMPredictor, as_rgb_image, get_preprocess_shape, load_predictor_weights,
                        map_points, postprocess_logits, preprocess_image)

__all__ = ['HRSAMPredictor', 'as_rgb_image', 'get_preprocess_shape', 'load_predictor_weights',
           'map_points', 'postprocess_logits', 'preprocess_image']
