"""Cycle-scan's scan in Triton: R weighted copies of one sequence as one periodic op.

Cycle-scan scans ``[x; x; x]`` and sums the copies' outputs weighted per channel. The copies
share their inputs, so the state entering copy r follows from one copy's final state and total
decay, and the weighted sum is one scan of one copy from a shared initial state (derivation and
backward in ``docs/scan_kernel_notes.md``). This module adds the two small kernels that make
that step (both carries with G in one, G's backward with the copy's final-state adjoint in the
other) and the autograd function; everything else is :mod:`.triton_scan`'s chunk kernels.
"""
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from ..switch import BackendUnavailableError
from .cycle import check_gamma
from .triton_scan import (CARRY_BLOCK, CARRY_CHUNKS, CARRY_WARPS, ScanConfig, ScanTuning, _apply_eagerly, _backward,
                          _carry_grid, _check_tuning, _chunk_outputs, _chunk_states, _final_state_walk, _Partials,
                          _Prepared, _prepare, _reduce, default_config, triton, triton_unavailable)

if triton is not None:
    import triton.language as tl

    from .triton_scan import _LN2, _carry_lanes, _carry_pass

    @triton.jit
    def _cycle_carry(h_local_ptr, dt_sum_ptr, A_ptr, gamma_ptr, h_in_copy_ptr, h_in_ptr, Gamma_ptr, dt_total_ptr,  #
                     NC, ND, D, R, sA_d, sA_n, sgamma_d, sgamma_r, CB: tl.constexpr, BLK: tl.constexpr):
        """Both carries of the periodic scan: the copy from zero (-> h_in_copy, its final state h_end
        and total decay M = exp(A S_total), S_total = sum_t dt_t -> dt_total (batch, D)), the shared
        state G = sum_r gamma_r H_r (H_1 = 0, H_{r+1} = M H_r + h_end), then the weighted scan from G
        with h_local times Gamma = sum_r gamma_r (-> h_in; Gamma -> Gamma_ptr (D,))."""
        pb, idx, imask, dcol, A2 = _carry_lanes(A_ptr, ND, D, sA_d, sA_n, BLK)
        zero = tl.zeros((BLK, ), tl.float32)
        h_end, S_total = _carry_pass(h_local_ptr, dt_sum_ptr, h_in_copy_ptr, pb, idx, imask, dcol, A2, carry=zero,
                                     scale=None, NC=NC, ND=ND, D=D, REVERSE=False, CB=CB, BLK=BLK, HAS_LOCAL=True,
                                     HAS_SCALE=False)
        M = tl.exp2(A2 * S_total)
        H = zero
        G = zero
        Gam = zero
        for r in range(R):
            g_r = tl.load(gamma_ptr + dcol * sgamma_d + r * sgamma_r, mask=imask, other=0.0).to(tl.float32)
            G += g_r * H
            Gam += g_r
            H = M * H + h_end
        row0 = idx < D  # lanes of state row 0: one per channel
        tl.store(Gamma_ptr + idx, Gam, mask=row0 & (pb == 0))
        tl.store(dt_total_ptr + pb * D + idx, S_total, mask=row0)
        _carry_pass(h_local_ptr, dt_sum_ptr, h_in_ptr, pb, idx, imask, dcol, A2, carry=G, scale=Gam, NC=NC, ND=ND,
                    D=D, REVERSE=False, CB=CB, BLK=BLK, HAS_LOCAL=True, HAS_SCALE=True)

    @triton.jit
    def _cycle_carry_bwd(dt_sum_ptr, dt_total_ptr, A_ptr, gamma_ptr, h_in_copy_ptr, g_in_ptr, g_in_copy_ptr,  #
                         dA_G_ptr, ddt_total_G_ptr, dgamma_G_ptr,  #
                         NC, ND, D, R, sA_d, sA_n, sgamma_d, sgamma_r, CB: tl.constexpr, BLK: tl.constexpr):
        """Backward of ``_cycle_carry``'s G = h_end * phi(M), phi = sum_r gamma_r Phi_r, Phi_r = sum_{j<r-1} M^j,
        from dG (the weighted scan's adjoint at its initial state, g_in[:, 0]): d h_end, and per
        (sample, n, d) the terms of dA (dA_G), of d S_total (ddt_total_G, summed over n by the host)
        and of d gamma_r (dgamma_G, (batch, N, D, R)); then the copy's adjoint carried back from
        d h_end with no local terms (-> g_in_copy)."""
        pb, idx, imask, dcol, A2 = _carry_lanes(A_ptr, ND, D, sA_d, sA_n, BLK)
        S_total = tl.load(dt_total_ptr + pb * D + dcol, mask=imask, other=0.0)  # saved by _cycle_carry
        h_end = tl.load(h_in_copy_ptr + (pb * (NC + 1) + NC) * ND + idx, mask=imask, other=0.0)
        dG = tl.load(g_in_ptr + pb * (NC + 1) * ND + idx, mask=imask, other=0.0)
        M = tl.exp2(A2 * S_total)
        Phi = tl.zeros((BLK, ), tl.float32)
        dPhi = tl.zeros((BLK, ), tl.float32)  # d Phi_r / dM
        phi = tl.zeros((BLK, ), tl.float32)
        dphi = tl.zeros((BLK, ), tl.float32)
        for r in range(R):
            g_r = tl.load(gamma_ptr + dcol * sgamma_d + r * sgamma_r, mask=imask, other=0.0).to(tl.float32)
            phi += g_r * Phi
            dphi += g_r * dPhi
            tl.store(dgamma_G_ptr + (pb * ND + idx) * R + r, dG * h_end * Phi, mask=imask)
            dPhi = Phi + M * dPhi
            Phi = M * Phi + 1.0
        dlogM = dG * h_end * dphi * M  # d/d(A S_total)
        tl.store(dA_G_ptr + pb * ND + idx, dlogM * S_total, mask=imask)
        tl.store(ddt_total_G_ptr + pb * ND + idx, dlogM * A2 * _LN2, mask=imask)
        _carry_pass(None, dt_sum_ptr, g_in_copy_ptr, pb, idx, imask, dcol, A2, carry=dG * phi, scale=None, NC=NC,
                    ND=ND, D=D, REVERSE=True, CB=CB, BLK=BLK, HAS_LOCAL=False, HAS_SCALE=False)


# ----------------------------------------------------------------------------- host side
class _CycleForward(NamedTuple):
    """What the periodic forward computes and its backward reads."""
    y: Tensor  # (batch, D, L0) in u's dtype
    h_in_copy: Tensor  # (batch, NC + 1, N, D) boundary states of the copy scanned from zero
    h_in: Tensor  # (batch, NC + 1, N, D) boundary states of the weighted scan (h_in[:, 0] = G)
    dt_sum: Tensor  # (batch, NC, D)
    dt_total: Tensor  # (batch, D) S_total = sum_t dt_t over the copy
    Gamma: Tensor  # (D,) sum_r gamma_r: the weighted scan's u_scale


def _cycle_forward(u: Tensor, delta: Tensor, prep: _Prepared, gamma: Tensor, cfg: ScanConfig) -> _CycleForward:
    """The periodic op's forward (see :func:`triton_cycle_selective_scan`)."""
    h_local, dt_sum = _chunk_states(u, delta, prep, cfg)  # the one pass over the states
    batch, NC, d_state, channels = h_local.shape
    f32 = dict(device=u.device, dtype=torch.float32)
    h_in_copy, h_in = torch.empty(2, batch, NC + 1, d_state, channels, **f32).unbind(0)
    Gamma = torch.empty(channels, **f32)
    dt_total = torch.empty(batch, channels, **f32)
    _cycle_carry[_carry_grid(h_local)](h_local_ptr=h_local, dt_sum_ptr=dt_sum, A_ptr=prep.A, gamma_ptr=gamma,
                                       h_in_copy_ptr=h_in_copy, h_in_ptr=h_in, Gamma_ptr=Gamma, dt_total_ptr=dt_total,
                                       NC=NC, ND=d_state * channels, D=channels, R=gamma.shape[1],
                                       sA_d=prep.A.stride(0), sA_n=prep.A.stride(1), sgamma_d=gamma.stride(0),
                                       sgamma_r=gamma.stride(1), CB=CARRY_CHUNKS, BLK=CARRY_BLOCK,
                                       num_warps=CARRY_WARPS)
    y = _chunk_outputs(u, delta, prep, h_in, cfg, u_scale=Gamma)
    return _CycleForward(y, h_in_copy, h_in, dt_sum, dt_total, Gamma)


def _copy_final_state_backward(p: _Partials, u: Tensor, delta: Tensor, prep: _Prepared, gamma: Tensor,
                               fwd: _CycleForward, cfg: ScanConfig) -> Tuple[Tensor, Tensor]:
    """Gradient through G (the weighted scan's initial state, ``p.g_in[:, 0]``) into the copy's final
    state: G's backward and the copy's adjoint carry (``_cycle_carry_bwd``), then the copy's reverse
    walk, d S_total on every d dt, added into ``p``'s buffers. Returns G's own dA (D, N) and d gamma (D, R)."""
    batch, NC, d_state, channels = u.shape[0], prep.NC, prep.A.shape[1], u.shape[1]
    f32 = dict(device=u.device, dtype=torch.float32)
    g_in_copy = torch.empty(batch, NC + 1, d_state, channels, **f32)
    dA_G, ddt_total_G = torch.empty(2, batch, d_state, channels, **f32).unbind(0)
    dgamma_G = torch.empty(batch, d_state, channels, gamma.shape[1], **f32)
    _cycle_carry_bwd[_carry_grid(g_in_copy)](dt_sum_ptr=fwd.dt_sum, dt_total_ptr=fwd.dt_total, A_ptr=prep.A,
                                             gamma_ptr=gamma, h_in_copy_ptr=fwd.h_in_copy, g_in_ptr=p.g_in,
                                             g_in_copy_ptr=g_in_copy, dA_G_ptr=dA_G, ddt_total_G_ptr=ddt_total_G,
                                             dgamma_G_ptr=dgamma_G, NC=NC, ND=d_state * channels, D=channels,
                                             R=gamma.shape[1], sA_d=prep.A.stride(0), sA_n=prep.A.stride(1),
                                             sgamma_d=gamma.stride(0), sgamma_r=gamma.stride(1), CB=CARRY_CHUNKS,
                                             BLK=CARRY_BLOCK, num_warps=CARRY_WARPS)
    _final_state_walk(p, u, delta, prep, fwd.h_in_copy, g_in_copy, fwd.dt_sum, ddt_total_G.sum(1), cfg)
    return dA_G.sum(0).t(), dgamma_G.sum((0, 1))


class _TritonCycleScanFunction(torch.autograd.Function):
    """Forward: one states pass, both carries in one kernel, one output pass over a single copy.

    Backward: the weighted scan's gradients (input Gamma u, initial state G); G's backward and the
    copy's adjoint carried back from its final state (one small kernel); then the copy's
    final-state gradient, a reverse walk only, accumulated into the same buffers.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, gamma, delta_softplus, cfg):
        prep = _prepare(u, A, B, C, D, delta_bias, delta_softplus, cfg)
        fwd = _cycle_forward(u, delta, prep, gamma, cfg)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, gamma, *fwd[1:], prep.BC)
        ctx.config = (cfg, delta_softplus)
        return fwd.y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        u, delta, A, B, C, D, delta_bias, gamma, *saved, BC = ctx.saved_tensors
        fwd = _CycleForward(None, *saved)
        cfg, delta_softplus = ctx.config
        prep = _prepare(u, A, B, C, D, delta_bias, delta_softplus, cfg, BC)
        copies = gamma.shape[1]
        # the weighted scan (input Gamma u from G); du, d delta kept in fp32 when the copy's walk adds to them
        p = _backward(dy, u, delta, prep, fwd.h_in, fwd.dt_sum, cfg, u_scale=fwd.Gamma, fp32_grads=copies > 1)
        dgamma = p.dscale_part.sum((0, 1))[:, None].expand(-1, copies)  # d Gamma
        if copies > 1:  # with one copy G = 0: nothing flows through the copy's final state
            dA_G, dgamma_G = _copy_final_state_backward(p, u, delta, prep, gamma, fwd, cfg)
            dgamma = dgamma + dgamma_G
        dA, dB, dC, dD, dbias = _reduce(p, u.shape[2], A.shape[1])
        if copies > 1:
            dA = dA + dA_G
        grads = (p.du.to(u.dtype), p.ddelta.to(delta.dtype), dA.to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
                 None if D is None else dD.to(D.dtype), None if delta_bias is None else dbias.to(delta_bias.dtype),
                 dgamma.to(gamma.dtype))
        return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad[:8])) + (None, None)


def triton_cycle_selective_scan(u: Tensor,
                                delta: Tensor,
                                A: Tensor,
                                B: Tensor,
                                C: Tensor,
                                D: Optional[Tensor],
                                delta_bias: Optional[Tensor],
                                gamma: Tensor,
                                delta_softplus: bool = True,
                                tuning: Optional[ScanTuning] = None) -> Tensor:
    """Cycle-scan's scan: one selective scan over R copies of a sequence, copies weighted and summed.

    Equals ``sum_r gamma[:, r] * y_r`` where ``y_r`` is the r-th copy of the scan over
    ``[x; x; ...; x]`` (R copies), but costs two passes over one copy instead of two over R:
    the state entering copy r is ``H_r`` (``H_1 = 0``, ``H_{r+1} = M H_r + h_end`` with ``h_end`` the
    copy's final state from zero and ``M = exp(A sum(dt))`` its total decay) and the scan is linear, so
    ``sum_r gamma_r h^(r)_t = Gamma h_t + P_t G`` with ``Gamma = sum_r gamma_r``, ``G = sum_r gamma_r H_r``
    and ``P_t`` the decay from the copy's start: one scan of one copy with input ``Gamma u`` from
    the initial state ``G``. Its chunk-local states are Gamma times the copy's own, so a single
    states pass serves both carries.

    Args:
        u, delta, A, B, C, D, delta_bias, delta_softplus: as
            :func:`.triton_scan.triton_selective_scan`, for one copy (``u, delta`` (batch, D, L),
            ``B, C`` (batch, N, L)).
        gamma (Tensor): (D, R) weight of each copy's output.
        tuning (ScanTuning, optional): launch tuning (benchmarks, tests); None: the defaults.

    Returns:
        Tensor: (batch, D, L) in ``u``'s dtype.
    """
    check_gamma(gamma, u.shape[1])
    tuning = _check_tuning(tuning)
    reason = triton_unavailable(u)
    if reason is not None:
        raise BackendUnavailableError(reason)
    cfg = default_config(u, A.shape[1], tuning)
    with torch.autocast(u.device.type, enabled=False):
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                           for t in (u, delta, A, B, C, D, delta_bias, gamma)):
            return _apply_eagerly(_TritonCycleScanFunction, u, delta, A, B, C, D, delta_bias, gamma,
                                  delta_softplus, cfg)
        prep = _prepare(u, A, B, C, D, delta_bias, delta_softplus, cfg)
        return _cycle_forward(u, delta, prep, gamma, cfg).y


__all__ = ['triton_cycle_selective_scan']
