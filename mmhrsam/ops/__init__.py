"""Kernels below the models: attention over token groups and the selective scan.

One switch (:mod:`.switch`) chooses the backend of each: ``set_backends(attention=..., scan=...)``.
"""
from . import attention, selective_scan  # noqa: F401  (their backend tables join the switch)
from .switch import Backend, BackendTable, BackendUnavailableError, get_backends, set_backends

__all__ = ['Backend', 'BackendTable', 'BackendUnavailableError', 'get_backends', 'set_backends']
