"""User-facing inference APIs."""
from .predictor import (HRSAMPredictor, as_rgb_image, get_preprocess_shape, load_predictor_weights,
                        map_points, map_points_original, postprocess_logits, postprocess_logits_original,
                        preprocess_image, preprocess_image_original)

__all__ = ['HRSAMPredictor', 'as_rgb_image', 'get_preprocess_shape', 'load_predictor_weights',
           'map_points', 'map_points_original', 'postprocess_logits', 'postprocess_logits_original',
           'preprocess_image', 'preprocess_image_original']
