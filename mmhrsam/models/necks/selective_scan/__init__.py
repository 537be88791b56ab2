"""Selective scan (Mamba's S6 recurrence) behind one switch; see :mod:`.switch`."""
from .chunked import chunked_selective_scan
from .mamba_ssm import ScanBackendUnavailableError, mamba_ssm_selective_scan
from .reference import reference_selective_scan
from .cycle import cycle_selective_scan, repeat_cycle_selective_scan
from .switch import (AUTO_ORDER, SCAN_BACKENDS, ScanBackend, available_scan_backends, get_default_scan_backend,
                     resolve_scan_backend, selective_scan, set_default_scan_backend, triton_selective_scan)

__all__ = [
    'selective_scan', 'set_default_scan_backend', 'get_default_scan_backend', 'resolve_scan_backend',
    'available_scan_backends', 'ScanBackend', 'ScanBackendUnavailableError', 'SCAN_BACKENDS', 'AUTO_ORDER',
    'chunked_selective_scan', 'reference_selective_scan', 'mamba_ssm_selective_scan', 'triton_selective_scan',
    'cycle_selective_scan', 'repeat_cycle_selective_scan'
]
