"""Cycle-scan's scan in Triton: R weighted copies of one sequence as one periodic op.

Cycle-scan scans ``[x; x; x]`` and sums the copies' outputs weighted per channel. The copies
share their inputs, so the state entering copy r follows from one copy's final state and total
decay, and the weighted sum is one scan of one copy from a shared initial state (derivation and
backward in ``docs/scan_kernel_notes.md``). This module adds the two small kernels that make
that step (both carries with G in one, G's backward with the copy's final-state adjoint in the
other) and the autograd function; everything else is :mod:`.triton_scan`'s chunk kernels.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .cycle import check_gamma
from .triton_scan import (CARRY_BLOCK, CARRY_CHUNKS, CARRY_WARPS, ScanConfig, _backward, _carry_grid, _chunk_outputs,
                          _chunk_states, _launch_kw, _Partials, _Prepared, _prepare, _reduce, _reverse_walk,
                          default_config, triton, triton_unavailable)

if triton is not None:
    import triton.language as tl

    from .triton_scan import _LN2, _carry_lanes, _carry_pass

    @triton.jit
    def _cycle_carry(local_ptr, S_ptr, A_ptr, gamma_ptr, hc_ptr, h_ptr, gsum_ptr, stot_ptr, NC, ND, D, R, sA_d,
                     sA_n, sg_d, sg_r, CB: tl.constexpr, BLK: tl.constexpr):
        """Both carries of the periodic scan: the copy from zero (-> hc, its final state h_end and
        total decay M = exp(A S_total); S_total -> stot (batch, D)), the shared state
        G = sum_r gamma_r H_r (H_1 = 0, H_{r+1} = M H_r + h_end), then the weighted scan from G with
        locals times Gamma = sum_r gamma_r (-> h; Gamma -> gsum (D,))."""
        pb, idx, imask, dcol, A2 = _carry_lanes(A_ptr, ND, D, sA_d, sA_n, BLK)
        zero = tl.zeros((BLK, ), tl.float32)
        h_end, S_total = _carry_pass(local_ptr, S_ptr, hc_ptr, pb, idx, imask, dcol, A2, zero, A2, NC, ND, D, False,
                                     CB, BLK, True, False)
        M = tl.exp2(A2 * S_total)
        H = zero
        G = zero
        Gam = zero
        for r in range(R):
            g_r = tl.load(gamma_ptr + dcol * sg_d + r * sg_r, mask=imask, other=0.0).to(tl.float32)
            G += g_r * H
            Gam += g_r
            H = M * H + h_end
        row0 = idx < D  # lanes of state row 0: one per channel
        tl.store(gsum_ptr + idx, Gam, mask=row0 & (pb == 0))
        tl.store(stot_ptr + pb * D + idx, S_total, mask=row0)
        _carry_pass(local_ptr, S_ptr, h_ptr, pb, idx, imask, dcol, A2, G, Gam, NC, ND, D, False, CB, BLK, True, True)

    @triton.jit
    def _cycle_carry_bwd(S_ptr, stot_ptr, A_ptr, gamma_ptr, hc_ptr, gw_ptr, gc_ptr, dAG_ptr, dSG_ptr, dgam_ptr,  #
                         NC, ND, D, R, sA_d, sA_n, sg_d, sg_r, CB: tl.constexpr, BLK: tl.constexpr):
        """Backward of ``_cycle_carry``'s G = h_end * phi(M), phi = sum_r gamma_r Phi_r, Phi_r = sum_{j<r-1} M^j,
        from dG (the weighted scan's adjoint at its initial state, gw[:, 0]): d h_end, and per
        (sample, n, d) the terms of dA (dAG), of d sum(dt) (dSG, summed over n by the host) and of
        d gamma_r (dgam, (batch, N, D, R)); then the copy's adjoint carried back from d h_end with
        no local terms (-> gc)."""
        pb, idx, imask, dcol, A2 = _carry_lanes(A_ptr, ND, D, sA_d, sA_n, BLK)
        S_total = tl.load(stot_ptr + pb * D + dcol, mask=imask, other=0.0)  # saved by _cycle_carry
        h_end = tl.load(hc_ptr + (pb * (NC + 1) + NC) * ND + idx, mask=imask, other=0.0)
        dG = tl.load(gw_ptr + pb * (NC + 1) * ND + idx, mask=imask, other=0.0)
        M = tl.exp2(A2 * S_total)
        Phi = tl.zeros((BLK, ), tl.float32)
        dPhi = tl.zeros((BLK, ), tl.float32)  # d Phi_r / dM
        phi = tl.zeros((BLK, ), tl.float32)
        dphi = tl.zeros((BLK, ), tl.float32)
        for r in range(R):
            g_r = tl.load(gamma_ptr + dcol * sg_d + r * sg_r, mask=imask, other=0.0).to(tl.float32)
            phi += g_r * Phi
            dphi += g_r * dPhi
            tl.store(dgam_ptr + (pb * ND + idx) * R + r, dG * h_end * Phi, mask=imask)
            dPhi = Phi + M * dPhi
            Phi = M * Phi + 1.0
        dlogM = dG * h_end * dphi * M  # d/d(A S_total)
        tl.store(dAG_ptr + pb * ND + idx, dlogM * S_total, mask=imask)
        tl.store(dSG_ptr + pb * ND + idx, dlogM * A2 * _LN2, mask=imask)
        _carry_pass(S_ptr, S_ptr, gc_ptr, pb, idx, imask, dcol, A2, dG * phi, A2, NC, ND, D, True, CB, BLK, False,
                    False)


# ----------------------------------------------------------------------------- host side
def _cycle_forward(u: Tensor, delta: Tensor, prep: _Prepared, gamma: Tensor, cfg: ScanConfig, has_bias: bool,
                   has_D: bool, softplus: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """y, h_in of the copy from zero, h_in of the weighted scan, S, S_total (batch, D), Gamma
    (see :func:`triton_cycle_selective_scan`)."""
    local, S = _chunk_states(u, delta, prep, cfg, has_bias, softplus)  # the one pass over the states
    batch, NC, d_state, channels = local.shape
    hin_copy, hin = torch.empty(2, batch, NC + 1, d_state, channels, device=u.device, dtype=torch.float32).unbind(0)
    nd = d_state * channels
    scale = torch.empty(u.shape[1], device=u.device, dtype=torch.float32)  # Gamma: the weighted scan's input is Gamma u
    S_total = torch.empty(batch, channels, device=u.device, dtype=torch.float32)
    _cycle_carry[_carry_grid(local)](local, S, prep.A, gamma, hin_copy, hin, scale, S_total, prep.NC, nd, u.shape[1],
                                     gamma.shape[1], prep.A.stride(0), prep.A.stride(1), gamma.stride(0),
                                     gamma.stride(1), CB=CARRY_CHUNKS, BLK=CARRY_BLOCK, num_warps=CARRY_WARPS)
    y = _chunk_outputs(u, delta, prep, hin, cfg, has_bias, has_D, softplus, uscale=scale)
    return y, hin_copy, hin, S, S_total, scale


def _copy_final_state_backward(p: _Partials, u: Tensor, delta: Tensor, prep: _Prepared, gamma: Tensor,
                               hin_copy: Tensor, S: Tensor, S_total: Tensor, cfg: ScanConfig, has_bias: bool,
                               softplus: bool) -> Tuple[Tensor, Tensor]:
    """Gradient through G (the weighted scan's initial state, ``p.gam[:, 0]``) into the copy's final
    state: G's backward and the copy's adjoint carry (``_cycle_carry_bwd``), then the copy's reverse
    walk, d sum(dt) on every d dt, added into ``p``'s buffers. Returns G's own dA (D, N) and d gamma (D, R)."""
    batch, NC, d_state, channels = hin_copy.shape[0], prep.NC, prep.A.shape[1], u.shape[1]
    f32 = dict(device=u.device, dtype=torch.float32)
    gam_copy = torch.empty(batch, NC + 1, d_state, channels, **f32)
    dAG, dSG = torch.empty(2, batch, d_state, channels, **f32).unbind(0)
    dgam = torch.empty(batch, d_state, channels, gamma.shape[1], **f32)
    _cycle_carry_bwd[_carry_grid(gam_copy)](S, S_total, prep.A, gamma, hin_copy, p.gam, gam_copy, dAG, dSG, dgam, NC,
                                            d_state * channels, channels, gamma.shape[1], prep.A.stride(0),
                                            prep.A.stride(1), gamma.stride(0), gamma.stride(1), CB=CARRY_CHUNKS,
                                            BLK=CARRY_BLOCK, num_warps=CARRY_WARPS)
    _reverse_walk(p, u, delta, prep, hin_copy, gam_copy, S, cfg, _launch_kw(prep, cfg, has_bias, softplus, backward=True),
                  ddt_const=dSG.sum(1), accumulate=True)
    return dAG.sum(0).t(), dgam.sum((0, 1))


class _TritonCycleScanFunction(torch.autograd.Function):
    """Forward: one states pass, both carries in one kernel, one output pass over a single copy.

    Backward: the weighted scan's gradients (input Gamma u, initial state G); G's backward and the
    copy's adjoint carried back from its final state (one small kernel); then the copy's
    final-state gradient, a reverse walk only, accumulated into the same buffers.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, gamma, delta_softplus, cfg):
        prep = _prepare(u, A, B, C, D, delta_bias, cfg)
        flags = (delta_bias is not None, D is not None, bool(delta_softplus))
        y, hin_copy, hin, S, S_total, scale = _cycle_forward(u, delta, prep, gamma, cfg, *flags)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, gamma, hin_copy, hin, S, S_total, scale, prep.BC)
        ctx.config = (cfg, flags)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        u, delta, A, B, C, D, delta_bias, gamma, hin_copy, hin, S, S_total, scale, BC = ctx.saved_tensors
        cfg, flags = ctx.config
        has_bias, _, softplus = flags
        prep = _prepare(u, A, B, C, D, delta_bias, cfg, BC)
        copies = gamma.shape[1]
        # the weighted scan (input Gamma u from G); du, d delta kept in fp32 when the copy's walk adds to them
        p = _backward(dy, u, delta, prep, hin, S, cfg, *flags, uscale=scale, fp32_grads=copies > 1)
        dgamma = p.dsp.sum((0, 1))[:, None].expand(-1, copies)  # d Gamma
        if copies > 1:  # with one copy G = 0: nothing flows through the copy's final state
            dA_G, dgamma_G = _copy_final_state_backward(p, u, delta, prep, gamma, hin_copy, S, S_total, cfg, has_bias,
                                                         softplus)
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
                                chunk_size: Optional[int] = None,
                                num_warps: Optional[int] = None) -> Tensor:
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
        chunk_size (int, optional): launch override (tests, benchmarks), see ``default_config``.
        num_warps (int, optional): launch override of the forward kernels.

    Returns:
        Tensor: (batch, D, L) in ``u``'s dtype.
    """
    from .mamba_ssm import ScanBackendUnavailableError  # noqa: PLC0415
    check_gamma(gamma, u.shape[1])
    reason = triton_unavailable(u)
    if reason is not None:
        raise ScanBackendUnavailableError(reason)
    cfg = default_config(u, A.shape[1], chunk_size, num_warps)
    with torch.autocast(u.device.type, enabled=False):
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                           for t in (u, delta, A, B, C, D, delta_bias, gamma)):
            return _TritonCycleScanFunction.apply(u, delta, A, B, C, D, delta_bias, gamma, delta_softplus, cfg)
        prep = _prepare(u, A, B, C, D, delta_bias, cfg)
        return _cycle_forward(u, delta, prep, gamma, cfg, delta_bias is not None, D is not None,
                              bool(delta_softplus))[0]


__all__ = ['triton_cycle_selective_scan']
