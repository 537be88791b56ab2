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

``auto`` follows the rule of :mod:`mmhrsam.ops.switch`: the preferred backend (set with
``set_backends(scan=...)`` or the ``MMHRSAM_SCAN_BACKEND`` variable), then
:data:`AUTO_ORDER`, the first that can run on the given inputs; ``chunked`` always can. A
backend named explicitly is used or raises :class:`~mmhrsam.ops.switch.BackendUnavailableError`.

Adding a backend is one entry in :data:`SCAN_BACKENDS` (and one in :data:`AUTO_ORDER` if
``auto`` should prefer it).
"""
from typing import Optional

from torch import Tensor

from ..switch import Backend, BackendTable
from .chunked import chunked_selective_scan
from .export_scan import export_selective_scan
from .mamba_ssm import mamba_ssm_selective_scan, mamba_ssm_unavailable
from .reference import reference_selective_scan


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


#: ``auto``'s preference order after the preferred backend; ends with an always-available backend.
AUTO_ORDER = ('triton', 'mamba_ssm', 'chunked')
#: The selective-scan backends: fn(u, delta, A, B, C, D, delta_bias, delta_softplus) -> y (batch, D, L).
SCAN_TABLE = BackendTable(
    'scan', 'MMHRSAM_SCAN_BACKEND', {
        'triton': Backend(triton_selective_scan, triton_unavailable),
        'mamba_ssm': Backend(mamba_ssm_selective_scan, mamba_ssm_unavailable),
        'chunked': Backend(chunked_selective_scan),
        'export': Backend(export_selective_scan),
        'reference': Backend(reference_selective_scan),
    },
    auto_order=AUTO_ORDER)
#: name -> :class:`~mmhrsam.ops.switch.Backend` (the table's dict; tests add fakes to it).
SCAN_BACKENDS = SCAN_TABLE.backends


def resolve_scan_backend(name: str, u: Tensor) -> str:
    """The backend that ``name`` means for inputs like ``u`` (explicit names are returned as is)."""
    return SCAN_TABLE.resolve(name, u)


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
        BackendUnavailableError: an explicitly named backend cannot run here.
    """
    _check_shapes(u, delta, A, B, C, D, delta_bias)
    name = resolve_scan_backend(backend, u)
    return SCAN_BACKENDS[name].fn(u, delta, A, B, C, D, delta_bias, delta_softplus)


def available_scan_backends(u: Tensor) -> list:
    """Names of the backends that can run on inputs like ``u`` here (``auto`` excluded)."""
    return SCAN_TABLE.available(u)


__all__ = [
    'SCAN_TABLE', 'SCAN_BACKENDS', 'AUTO_ORDER', 'selective_scan', 'resolve_scan_backend', 'available_scan_backends',
    'triton_selective_scan', 'triton_unavailable'
]
