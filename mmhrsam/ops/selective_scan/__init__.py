"""Selective scan (Mamba's S6 recurrence) and Cycle-scan's repeated scan, behind the backend switch."""
from .chunked import chunked_selective_scan
from .cycle import cycle_selective_scan, repeat_cycle_selective_scan
from .mamba_ssm import mamba_ssm_selective_scan
from .reference import reference_selective_scan
from .switch import (AUTO_ORDER, SCAN_BACKENDS, SCAN_TABLE, available_scan_backends, resolve_scan_backend,
                     selective_scan, triton_selective_scan)

__all__ = [
    'selective_scan', 'resolve_scan_backend', 'available_scan_backends', 'SCAN_TABLE', 'SCAN_BACKENDS', 'AUTO_ORDER',
    'chunked_selective_scan', 'reference_selective_scan', 'mamba_ssm_selective_scan', 'triton_selective_scan',
    'cycle_selective_scan', 'repeat_cycle_selective_scan'
]
