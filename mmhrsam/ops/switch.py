"""The backend switch: which kernel computes attention and the selective scan.

Each kind of kernel (``'attention'``: :mod:`mmhrsam.ops.attention.kernels`, ``'scan'``:
:mod:`mmhrsam.ops.selective_scan.switch`) has a :class:`BackendTable`: named
implementations, each with a check saying why it cannot run on given inputs. All kinds
follow one rule (:meth:`BackendTable.resolve`):

- a backend named explicitly is used as is; if it cannot run, the kernel raises
  :class:`BackendUnavailableError` with the reason and what to install;
- ``'auto'`` takes the preferred backend (set with :func:`set_backends`, else the
  environment variable of the kind, ``MMHRSAM_ATTENTION_BACKEND`` /
  ``MMHRSAM_SCAN_BACKEND``, read here and nowhere else) and falls back along the table's
  ``auto_order`` to the first backend that can run on the inputs, warning once when a
  preferred backend is skipped. The last entry of every ``auto_order`` runs anywhere,
  so ``'auto'`` never fails.

``set_backends(attention='flex', scan='triton')`` sets the preferences for the process;
``'auto'`` restores the built-in order. See ``docs/architecture.md`` ("Backends").
"""
from __future__ import annotations

import os
import warnings
from typing import Callable, Dict, NamedTuple, Optional, Tuple

from torch import Tensor


class BackendUnavailableError(RuntimeError):
    """A backend named explicitly cannot run here; the message says why and what to install."""


def always_available(probe: Tensor) -> Optional[str]:
    """Availability check of backends that run on any tensor."""
    return None


class Backend(NamedTuple):
    """One implementation and its availability check."""
    #: the kernel; its signature is fixed by the table's kind.
    fn: Callable[..., Tensor]
    #: unavailable(probe) -> why it cannot run on inputs like ``probe`` here, or None.
    unavailable: Callable[[Tensor], Optional[str]] = always_available


#: kind -> table, filled by the tables' constructors.
TABLES: Dict[str, 'BackendTable'] = {}


class BackendTable:
    """The named backends of one kind of kernel and its preference.

    Args:
        kind (str): ``'attention'`` or ``'scan'``; the keyword of :func:`set_backends`.
        env_var (str): environment variable naming the preferred backend.
        backends (dict[str, Backend]): the implementations (mutable: tests add fakes).
        auto_order (tuple[str]): ``'auto'``'s fallback order; its last entry must always run.
    """

    def __init__(self, kind: str, env_var: str, backends: Dict[str, Backend], auto_order: Tuple[str, ...]):
        if not auto_order or auto_order[-1] not in backends:
            raise ValueError(f'auto_order of {kind} must end with one of {tuple(backends)}')
        self.kind, self.env_var, self.backends, self.auto_order = kind, env_var, backends, auto_order
        self.preference: Optional[str] = None
        self._warned = set()
        TABLES[kind] = self

    def names(self, allow_auto: bool = True) -> Tuple[str, ...]:
        return (('auto', ) if allow_auto else ()) + tuple(self.backends)

    def validate(self, name: str) -> str:
        """``name`` if it is ``'auto'`` or a backend of this table, else ValueError."""
        if name not in self.names():
            raise ValueError(f'unknown {self.kind} backend {name!r}; choose from {self.names()}')
        return name

    def set_preferred(self, name: str) -> None:
        """Prefer ``name`` under ``'auto'`` (``'auto'`` restores the built-in order)."""
        self.preference = None if self.validate(name) == 'auto' else name

    def preferred(self) -> str:
        """The preference: :func:`set_backends`, else the environment variable, else ``'auto'``."""
        name = self.preference or os.environ.get(self.env_var) or 'auto'
        if name not in self.names():
            raise ValueError(f'{self.env_var}={name!r} is not one of {self.names()}')
        return name

    def resolve(self, name: str, probe: Tensor) -> str:
        """The backend that ``name`` means for inputs like ``probe`` (the one rule, module docstring)."""
        if self.validate(name) != 'auto':
            return name
        preferred = self.preferred()
        for candidate in ((preferred, ) if preferred != 'auto' else ()) + self.auto_order:
            reason = self.backends[candidate].unavailable(probe)
            if reason is None:
                return candidate
            if candidate == preferred and preferred not in self._warned:
                self._warned.add(preferred)
                warnings.warn(f'preferred {self.kind} backend {preferred!r} cannot run here, falling back: {reason}')
        return self.auto_order[-1]

    def available(self, probe: Tensor) -> list:
        """Backends that can run on inputs like ``probe`` here (``'auto'`` excluded)."""
        return [name for name, b in self.backends.items() if b.unavailable(probe) is None]

    def check(self, name: str, probe: Tensor) -> None:
        """Raise :class:`BackendUnavailableError` unless backend ``name`` can run on ``probe``."""
        reason = self.backends[name].unavailable(probe)
        if reason is not None:
            raise BackendUnavailableError(reason)


def set_backends(attention: Optional[str] = None, scan: Optional[str] = None) -> None:
    """Set the backends ``'auto'`` prefers, process-wide.

    Args:
        attention (str, optional): an attention backend (``'sdpa'``, ``'flex'``,
            ``'xformers'``, ``'reference'``), ``'auto'`` for the built-in choice, or None to
            leave the preference unchanged.
        scan (str, optional): a selective-scan backend (``'triton'``, ``'mamba_ssm'``,
            ``'chunked'``, ``'reference'``), ``'auto'``, or None.
    """
    for kind, name in (('attention', attention), ('scan', scan)):
        if name is not None:
            TABLES[kind].set_preferred(name)


def get_backends() -> Dict[str, str]:
    """The current preference of every kind (``'auto'`` when none is set)."""
    return {kind: table.preferred() for kind, table in TABLES.items()}
