"""Utilities: checkpoint conversion (see :mod:`.checkpoint`)."""
from .checkpoint import (ConversionResult, convert_hrsam_release, convert_mae, convert_sam,
                         extract_state_dict, load_checkpoint_file, rename_keys, save_state_dict)

__all__ = ['ConversionResult', 'convert_hrsam_release', 'convert_mae', 'convert_sam',
           'extract_state_dict', 'load_checkpoint_file', 'rename_keys', 'save_state_dict']
