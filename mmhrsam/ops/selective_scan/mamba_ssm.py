"""Adapter to mamba-ssm's CUDA ``selective_scan_fn`` (optional; imported lazily)."""
import functools
from typing import Callable, Optional, Tuple

from torch import Tensor

from ..switch import BackendUnavailableError

INSTALL_HINT = ('pip install mamba-ssm (built from source for this torch and CUDA; '
                'see https://github.com/state-spaces/mamba)')


@functools.lru_cache(maxsize=None)
def _load_selective_scan_fn() -> Tuple[Optional[Callable], str]:
    """(selective_scan_fn, '') when mamba-ssm imports, else (None, the reason). Cached."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as e:  # noqa: BLE001  ImportError, or a binary built for another torch
        return None, f'{type(e).__name__}: {e}'
    return selective_scan_fn, ''


def mamba_ssm_unavailable(u: Tensor) -> Optional[str]:
    """Why the mamba_ssm backend cannot run on ``u`` (None when it can)."""
    fn, error = _load_selective_scan_fn()
    if fn is None:
        return f"scan backend 'mamba_ssm' needs the optional package mamba-ssm: {INSTALL_HINT}. ({error})"
    if not u.is_cuda:
        return f"scan backend 'mamba_ssm' runs on CUDA tensors only, got {u.device}; use 'chunked'"
    return None


def mamba_ssm_selective_scan(u: Tensor,
                             delta: Tensor,
                             A: Tensor,
                             B: Tensor,
                             C: Tensor,
                             D: Optional[Tensor] = None,
                             delta_bias: Optional[Tensor] = None,
                             delta_softplus: bool = True) -> Tensor:
    """Selective scan with mamba-ssm's fused CUDA kernel (same arguments as the other backends).

    The kernel wants ``delta``, ``B`` and ``C`` in ``u``'s dtype and ``A``, ``D`` and
    ``delta_bias`` in float32; it accumulates in float32 and returns ``u``'s dtype.
    ``B``/``C`` of shape (batch, N, L) are its single-group variable B/C.

    Raises:
        BackendUnavailableError: mamba-ssm is not installed or the inputs are not CUDA.
    """
    reason = mamba_ssm_unavailable(u)
    if reason is not None:
        raise BackendUnavailableError(reason)
    fn, _ = _load_selective_scan_fn()
    dtype = u.dtype
    return fn(u.contiguous(), delta.to(dtype).contiguous(), A.float().contiguous(),
              B.to(dtype).contiguous(), C.to(dtype).contiguous(),
              D=None if D is None else D.float().contiguous(), z=None,
              delta_bias=None if delta_bias is None else delta_bias.float().contiguous(),
              delta_softplus=delta_softplus, return_last_state=False)
