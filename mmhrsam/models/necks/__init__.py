"""Necks: the Cycle-scan modules and the selective-scan backends they run on."""
from .cycle_scan import CycleScan, MultiScaleCycleScan
from .selective_scan import (ScanBackendUnavailableError, get_default_scan_backend, selective_scan,
                             set_default_scan_backend)
from .simple_feature_pyramid import SimpleFeaturePyramid

__all__ = [
    'CycleScan', 'MultiScaleCycleScan', 'selective_scan', 'set_default_scan_backend', 'get_default_scan_backend',
    'ScanBackendUnavailableError', 'SimpleFeaturePyramid'
]
