"""Utilities: checkpoint conversion (see :mod:`.checkpoint`)."""
from .checkpoint import (ConversionResult, check_rope_freqs, convert_hrsam_release, convert_mae,
                         convert_sam, extract_state_dict, load_checkpoint_file, load_model_weights,
                         rename_keys, save_state_dict, to_model_layout)

__all__ = ['ConversionResult', 'check_rope_freqs', 'load_model_weights', 'to_model_layout',
           'convert_hrsam_release', 'convert_mae', 'convert_sam',
           'extract_state_dict', 'load_checkpoint_file', 'rename_keys', 'save_state_dict']
