"""One entry point, :func:`selective_scan`, in front of interchangeable backends.

=============  ==========================================================  ===========
backend        how                                                         devices
=============  ==========================================================  ===========
``triton``     Triton kernels, chunked forward and backward (JIT, no       CUDA
               build step; :mod:`.triton_scan`)
``mamba_ssm``  mamba-ssm's fused CUDA kernel (optional package)            CUDA
``chunked``    pure PyTorch, chunk-parallel, O(sqrt L) Python steps        any
``export``     pure PyTorch, out-of-place ops only: traceable for ONNX      any
               export (:mod:`.export_scan`)
``reference``  sequential float64 loop over tokens, for tests              any
=============  ==========================================================  ===========

``triton`` is imported lazily: nothing imports triton until a CUDA tensor asks for it (or the
backend is named explicitly), and a missing or broken triton makes the backend unavailable with
the reason, never an ImportError. It also runs CPU tensors under Triton's interpreter when its
kernels were defined with ``TRITON_INTERPRET=1`` (tests), but only when named explicitly:
``auto`` always sends CPU tensors to ``chunked``.

``auto`` never fails: it takes the preferred backend (the global default when one is set
with :func:`set_default_scan_backend` or the ``MMHRSAM_SCAN_BACKEND`` variable, else the
first of :data:`AUTO_ORDER`) and falls back along :data:`AUTO_ORDER` to the first backend
that can run on the given inputs; ``chunked`` always can. A backend named explicitly is
used or raises :class:`ScanBackendUnavailableError`.

Adding a backend is one entry in :data:`SCAN_BACKENDS` (and one in :data:`AUTO_ORDER` if
``auto`` should prefer it).
"""
import os
import warnings
from typing import Callable, Dict, NamedTuple, Optional

from torch import Tensor

from .chunked import chunked_selective_scan
from .export_scan import export_selective_scan
from .mamba_ssm import ScanBackendUnavailableError, mamba_ssm_selective_scan, mamba_ssm_unavailable
from .reference import reference_selective_scan

ENV_VAR = 'MMHRSAM_SCAN_BACKEND'


def _always_available(u: Tensor) -> Optional[str]:
    return None


class ScanBackend(NamedTuple):
    """A selective-scan implementation and its availability check."""
    #: fn(u, delta, A, B, C, D, delta_bias, delta_softplus) -> y (batch, D, L).
    fn: Callable[..., Tensor]
    #: unavailable(u) -> why it cannot run on inputs like ``u`` here, or None.
    unavailable: Callable[[Tensor], Optional[str]] = _always_available


def triton_selective_scan(u: Tensor, *args, **kwargs) -> Tensor:
    """:func:`.triton_scan.triton_selective_scan`, imported on first use (see the module docstring)."""
    from .triton_scan import triton_selective_scan as fn  # noqa: PLC0415  lazy: imports triton
    return fn(u, *args, **kwargs)


def triton_unavailable(u: Tensor) -> Optional[str]:
    """Why ``auto`` cannot use the triton backend for ``u`` (None when it can); CPU never imports triton."""
    if not u.is_cuda:
        return (f"scan backend 'triton' runs on CUDA tensors, got {u.device} (CPU tensors only through "
                "Triton's interpreter, TRITON_INTERPRET=1, when the backend is named explicitly)")
    from .triton_scan import triton_unavailable as check  # noqa: PLC0415
    return check(u)


SCAN_BACKENDS: Dict[str, ScanBackend] = {
    'triton': ScanBackend(triton_selective_scan, triton_unavailable),
    'mamba_ssm': ScanBackend(mamba_ssm_selective_scan, mamba_ssm_unavailable),
    'chunked': ScanBackend(chunked_selective_scan),
    'export': ScanBackend(export_selective_scan),
    'reference': ScanBackend(reference_selective_scan),
}
#: ``auto``'s preference order after the global default; must end with an always-available backend.
AUTO_ORDER = ('triton', 'mamba_ssm', 'chunked')

_default_backend: Optional[str] = None
_warned = set()


def _validate(name: str, allow_auto: bool = True) -> str:
    names = (('auto', ) if allow_auto else ()) + tuple(SCAN_BACKENDS)
    if name not in names:
        raise ValueError(f'unknown selective-scan backend {name!r}; choose from {names}')
    return name


def set_default_scan_backend(name: Optional[str]) -> None:
    """Set the backend ``auto`` prefers (``None`` or ``'auto'`` restores the built-in order)."""
    global _default_backend
    _default_backend = None if name in (None, 'auto') else _validate(name)


def get_default_scan_backend() -> str:
    """The preferred backend: set_default_scan_backend(), else $MMHRSAM_SCAN_BACKEND, else 'auto'."""
    name = _default_backend or os.environ.get(ENV_VAR) or 'auto'
    if name not in ('auto', ) + tuple(SCAN_BACKENDS):
        raise ValueError(f'{ENV_VAR}={name!r} is not one of {("auto", ) + tuple(SCAN_BACKENDS)}')
    return name


def resolve_scan_backend(name: str, u: Tensor) -> str:
    """The backend that ``name`` means for inputs like ``u`` (explicit names are returned as is)."""
    if _validate(name) != 'auto':
        return name
    preferred = get_default_scan_backend()
    candidates = ((preferred, ) if preferred != 'auto' else ()) + AUTO_ORDER
    for candidate in candidates:
        reason = SCAN_BACKENDS[candidate].unavailable(u)
        if reason is None:
            return candidate
        if candidate == preferred and preferred not in _warned:  # an explicit choice: say once why not
            _warned.add(preferred)
            warnings.warn(f'default scan backend {preferred!r} cannot run here, falling back: {reason}')
    return 'chunked'


def _check_shapes(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                  delta_bias: Optional[Tensor]) -> None:
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f'u and delta must both be (batch, D, L), got {tuple(u.shape)} and {tuple(delta.shape)}')
    batch, channels, length = u.shape
    if A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(f'A must be (D={channels}, N), got {tuple(A.shape)}')
    for name, t in (('B', B), ('C', C)):
        if tuple(t.shape) != (batch, A.shape[1], length):
            raise ValueError(f'{name} must be (batch, N, L) = {(batch, A.shape[1], length)}, got {tuple(t.shape)}')
    for name, t in (('D', D), ('delta_bias', delta_bias)):
        if t is not None and tuple(t.shape) != (channels, ):
            raise ValueError(f'{name} must be ({channels},), got {tuple(t.shape)}')


def selective_scan(u: Tensor,
                   delta: Tensor,
                   A: Tensor,
                   B: Tensor,
                   C: Tensor,
                   D: Optional[Tensor] = None,
                   delta_bias: Optional[Tensor] = None,
                   delta_softplus: bool = True,
                   backend: str = 'auto') -> Tensor:
    """Selective scan (mamba-ssm ``selective_scan_fn`` semantics, one B/C group, no z gate).

    With ``dt = softplus(delta + delta_bias)`` and per-channel diagonal ``A``::

        h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t      h: (batch, D, N), h_0 = 0
        y_t = <C_t, h_t> + D * u_t

    Every backend accumulates the state in float32 (the reference in float64) and returns
    ``u``'s dtype, so bf16/fp16 inputs are fine.

    Args:
        u (Tensor): (batch, D, L) input.
        delta (Tensor): (batch, D, L) time steps before the bias and softplus.
        A (Tensor): (D, N) state matrix, negative for a stable scan.
        B (Tensor): (batch, N, L) input projection shared by all channels.
        C (Tensor): (batch, N, L) output projection shared by all channels.
        D (Tensor, optional): (D,) skip weight.
        delta_bias (Tensor, optional): (D,) added to ``delta``.
        delta_softplus (bool): apply softplus to ``delta + delta_bias``.
        backend (str): ``'auto'`` or a key of :data:`SCAN_BACKENDS`.

    Returns:
        Tensor: y, (batch, D, L) in ``u``'s dtype.

    Raises:
        ScanBackendUnavailableError: an explicitly named backend cannot run here.
    """
    _check_shapes(u, delta, A, B, C, D, delta_bias)
    name = resolve_scan_backend(backend, u)
    return SCAN_BACKENDS[name].fn(u, delta, A, B, C, D, delta_bias, delta_softplus)


def available_scan_backends(u: Tensor) -> list:
    """Names of the backends that can run on inputs like ``u`` here (``auto`` excluded)."""
    return [name for name, b in SCAN_BACKENDS.items() if b.unavailable(u) is None]


__all__ = [
    'ScanBackend', 'ScanBackendUnavailableError', 'SCAN_BACKENDS', 'AUTO_ORDER', 'ENV_VAR', 'selective_scan',
    'set_default_scan_backend', 'get_default_scan_backend', 'resolve_scan_backend', 'available_scan_backends',
    'triton_selective_scan', 'triton_unavailable'
]
