"""Cycle-scan's scan: a selective scan over R end-to-end copies of one sequence, copies weighted.

``cycle_selective_scan(u, ..., gamma)`` returns ``sum_r gamma[:, r] * y_r`` where ``y_r`` is the
r-th copy of ``selective_scan`` over ``[u; u; ...; u]``. Every backend computes exactly that by
repeating the inputs (:func:`repeat_cycle_selective_scan`, the definition), except ``triton``
and ``export``, which use the period: the state entering each copy follows from one copy's final
state and total decay, so the whole thing is two passes over one copy instead of two over R copies
(:func:`.triton_cycle_scan.triton_cycle_selective_scan`, :func:`.export_scan.export_cycle_selective_scan`).
"""
from typing import Optional

from torch import Tensor

from .export_scan import export_cycle_selective_scan
from .switch import _check_shapes, resolve_scan_backend, selective_scan


def check_gamma(gamma: Tensor, channels: int) -> None:
    """Raise ValueError unless ``gamma`` is (channels, R) with R >= 1."""
    if gamma.dim() != 2 or gamma.shape[0] != channels or gamma.shape[1] < 1:
        raise ValueError(f'gamma must be (D={channels}, R >= 1), got {tuple(gamma.shape)}')


def repeat_cycle_selective_scan(u: Tensor,
                                delta: Tensor,
                                A: Tensor,
                                B: Tensor,
                                C: Tensor,
                                D: Optional[Tensor],
                                delta_bias: Optional[Tensor],
                                gamma: Tensor,
                                delta_softplus: bool = True,
                                backend: str = 'auto') -> Tensor:
    """The definition: scan the repeated sequence with ``selective_scan``, weight the copies, sum."""
    batch, channels, length = u.shape
    copies = gamma.shape[1]

    def repeat(t: Tensor) -> Tensor:  # (batch, K, L) -> (batch, K, R*L)
        return t.repeat(1, 1, copies)

    y = selective_scan(repeat(u), repeat(delta), A, repeat(B), repeat(C), D, delta_bias, delta_softplus,
                       backend=backend)  # (batch, D, R*L)
    return (y.view(batch, channels, copies, length) * gamma[None, :, :, None]).sum(2).to(u.dtype)


def cycle_selective_scan(u: Tensor,
                         delta: Tensor,
                         A: Tensor,
                         B: Tensor,
                         C: Tensor,
                         D: Optional[Tensor],
                         delta_bias: Optional[Tensor],
                         gamma: Tensor,
                         delta_softplus: bool = True,
                         backend: str = 'auto') -> Tensor:
    """Selective scan over ``R = gamma.shape[1]`` copies of the sequence, copy r weighted by ``gamma[:, r]``.

    Args:
        u (Tensor): (batch, D, L) one copy of the input.
        delta (Tensor): (batch, D, L) time steps of one copy, before bias and softplus.
        A (Tensor): (D, N) state matrix (negative).
        B (Tensor): (batch, N, L) input projection of one copy.
        C (Tensor): (batch, N, L) output projection of one copy.
        D (Tensor, optional): (D,) skip weight.
        delta_bias (Tensor, optional): (D,) added to ``delta``.
        gamma (Tensor): (D, R) per-channel weight of each copy's output.
        delta_softplus (bool): softplus on ``delta + delta_bias``.
        backend (str): as :func:`.selective_scan`; ``triton`` takes the periodic shortcut.

    Returns:
        Tensor: (batch, D, L) in ``u``'s dtype.
    """
    _check_shapes(u, delta, A, B, C, D, delta_bias)
    check_gamma(gamma, u.shape[1])
    name = resolve_scan_backend(backend, u)
    if name == 'triton':
        from .triton_cycle_scan import triton_cycle_selective_scan  # noqa: PLC0415  lazy: imports triton
        return triton_cycle_selective_scan(u, delta, A, B, C, D, delta_bias, gamma, delta_softplus)
    if name == 'export':  # the same periodic shortcut in traceable ops
        return export_cycle_selective_scan(u, delta, A, B, C, D, delta_bias, gamma, delta_softplus)
    return repeat_cycle_selective_scan(u, delta, A, B, C, D, delta_bias, gamma, delta_softplus, backend=name)


__all__ = ['cycle_selective_scan', 'repeat_cycle_selective_scan']
