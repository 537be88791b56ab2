"""Selective scan and Cycle-scan's periodic scan in traceable PyTorch operations (ONNX export).

The ``chunked`` backend updates its states in place (``out=`` arguments, slice writes),
which the ONNX exporter does not translate faithfully, and the ``triton`` backends are
kernels the exporter cannot see into. This backend computes the same recurrence with
out-of-place operations only, so ``torch.onnx.export`` turns it into plain ONNX ops: the
two loops over the positions of a chunk are TorchScript functions (one ONNX ``Loop`` each),
the short loops over chunks and copies are unrolled for the traced sequence length.

It uses the chunk layout of :mod:`.chunked` (chunks of ``T`` tokens scanned side by side
over their ``T`` positions, then a carry over the chunks) and, for Cycle-scan, the period
of the repeated sequence, so the ``R`` copies are never materialized. With ``F`` the state
one copy leaves behind from a zero start and ``P = exp(A * sum(dt))`` its total decay, the
state entering copy ``r`` is ``h_r = P * h_{r-1} + F`` (``h_0 = 0``). The recurrence is
linear in its entry state and its drive ``dt * u * B``, so the gamma-weighted sum of the
copies' outputs is the output of *one* copy scanned from the entry state
``H = sum_r gamma_r h_r`` with the drive and the skip term scaled by ``G = sum_r gamma_r``
(gamma is per channel, as the state is). Work: two passes over one copy, as the Triton op.

Everything runs in float32 (the state of every backend); sequence shapes are read as
Python ints, so an exported graph is specialised to the traced length.
"""
import functools
import warnings
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .chunked import _from_chunks, _to_chunks, default_chunk_size


def _final_states(dt: Tensor, dtu: Tensor, Bt: Tensor, A: Tensor, h: Tensor) -> Tensor:
    """Scan every chunk over its T positions from ``h`` (R, D, N); returns the final states.

    dt, dtu: (T, R, D) time steps and ``dt * u``; Bt: (T, R, N); A: (D, N); R = nC * batch.
    """
    for t in range(dt.shape[0]):
        h = h * torch.exp(dt[t].unsqueeze(-1) * A) + dtu[t].unsqueeze(-1) * Bt[t].unsqueeze(1)
    return h


def _outputs(dt: Tensor, dtu: Tensor, Bt: Tensor, Ct: Tensor, A: Tensor, h: Tensor) -> Tensor:
    """As :func:`_final_states`, returning the outputs (T, R, D) ``<C_t, h_t>`` instead (Ct: (T, R, N))."""
    ys = []
    for t in range(dt.shape[0]):
        h = h * torch.exp(dt[t].unsqueeze(-1) * A) + dtu[t].unsqueeze(-1) * Bt[t].unsqueeze(1)
        ys.append((h * Ct[t].unsqueeze(1)).sum(-1))
    return torch.stack(ys)


@functools.lru_cache(maxsize=None)
def _scripted(fn: Callable) -> Callable:
    """``fn`` as a TorchScript function, compiled on first use.

    Scripted, each position loop is exported as one ONNX Loop; unrolled by the tracer, every
    step's (nC * b, D, N) state would stay alive until the trace ends (about 8 * L * D * N
    floats per scan: 3 GB for one Cycle-scan of the ViT-B at 1024², 13 GB at 2048²).
    """
    with warnings.catch_warnings():
        # torch.jit.script is deprecated in favour of torch.export, but it is what gives the
        # TorchScript-based ONNX exporter a Loop.
        warnings.simplefilter('ignore', FutureWarning)
        return torch.jit.script(fn)


def _carry_from(local: Tensor, decay: Tensor, start: Tensor, batch: int) -> Tuple[Tensor, Tensor]:
    """States entering every chunk, and the state after the last one, from an entry state.

    Args:
        local (Tensor): (nC * batch, D, N) each chunk's final state from a zero start.
        decay (Tensor): (nC * batch, D, N) ``exp(A * sum(dt))`` over each chunk.
        start (Tensor): (batch, D, N) state entering the first chunk.
        batch (int): batch size (rows are in (chunk, sample) order).

    Returns:
        tuple[Tensor, Tensor]: (nC * batch, D, N) entry states and the (batch, D, N) final state.
    """
    states = [start]
    for local_k, decay_k in zip(local.view(-1, batch, *local.shape[1:]).unbind(0),
                                decay.view(-1, batch, *decay.shape[1:]).unbind(0)):
        states.append(local_k + decay_k * states[-1])
    return torch.stack(states[:-1]).flatten(0, 1), states[-1]


def _time_steps(delta: Tensor, delta_bias: Optional[Tensor], delta_softplus: bool) -> Tensor:
    """(batch, D, L) float32 time steps: ``delta`` plus its bias, through softplus if asked."""
    dt = delta.float() if delta_bias is None else delta.float() + delta_bias.float()[:, None]
    return F.softplus(dt) if delta_softplus else dt


def _weighted_entry(final: Tensor, period_decay: Tensor, gamma: Tensor, zero: Tensor) -> Tuple[Tensor, Tensor]:
    """The copies' entry states weighted by gamma, and the weights' sum.

    With ``h_0 = 0`` and ``h_r = P * h_{r-1} + F`` the state entering copy r, returns
    ``H = sum_r gamma_r h_r`` (batch, D, N) and ``G = sum_r gamma_r`` (D, 1).

    Args:
        final (Tensor): (batch, D, N) ``F``, the state one copy leaves from a zero start.
        period_decay (Tensor): (batch, D, N) ``P``, the decay over one copy.
        gamma (Tensor): (D, R) float32 weights of the copies.
        zero (Tensor): (batch, D, N) zeros, ``h_0``.
    """
    entry = weighted = zero
    for r in range(int(gamma.shape[1])):
        if r:
            entry = period_decay * entry + final
        weighted = weighted + gamma[None, :, r, None] * entry
    return weighted, gamma.sum(1)[:, None]


def export_cycle_selective_scan(u: Tensor,
                                delta: Tensor,
                                A: Tensor,
                                B: Tensor,
                                C: Tensor,
                                D: Optional[Tensor],
                                delta_bias: Optional[Tensor],
                                gamma: Tensor,
                                delta_softplus: bool = True,
                                chunk_size: Optional[int] = None) -> Tensor:
    """Selective scan over ``R = gamma.shape[1]`` copies of the sequence, copy r weighted by ``gamma[:, r]``.

    Same contract as :func:`.cycle.cycle_selective_scan` (shapes are checked there); see the
    module docstring for the method.

    Args:
        u (Tensor): (batch, D, L) one copy of the input.
        delta (Tensor): (batch, D, L) time steps before bias and softplus.
        A (Tensor): (D, N) state matrix (negative).
        B (Tensor): (batch, N, L) input projection.
        C (Tensor): (batch, N, L) output projection.
        D (Tensor, optional): (D,) skip weight.
        delta_bias (Tensor, optional): (D,) added to ``delta``.
        gamma (Tensor): (D, R) per-channel weight of each copy's output.
        delta_softplus (bool): softplus on ``delta + delta_bias``.
        chunk_size (int, optional): tokens per chunk; default ~sqrt(L).

    Returns:
        Tensor: (batch, D, L) in ``u``'s dtype.
    """
    batch, length = int(u.shape[0]), int(u.shape[2])  # static under tracing: baked into the graph
    chunk_size = chunk_size or default_chunk_size(length)
    acc = torch.float32
    dt = _time_steps(delta, delta_bias, delta_softplus)  # (b, D, L) float32
    u32, A32, gamma32 = u.to(acc), A.to(acc), gamma.to(acc)
    dt_c, dtu_c = _to_chunks(dt, chunk_size, acc), _to_chunks(dt * u32, chunk_size, acc)  # (T, nC*b, D)
    Bt, Ct = _to_chunks(B, chunk_size, acc), _to_chunks(C, chunk_size, acc)  # (T, nC*b, N)
    zero = dt_c.new_zeros(batch, *A32.shape)  # (b, D, N)

    # Pass 1: one copy from a zero start -> the state it leaves behind (F) and its decay (P).
    chunk_zero = dt_c.new_zeros(int(dt_c.shape[1]), *A32.shape)  # (nC*b, D, N)
    local = _scripted(_final_states)(dt_c, dtu_c, Bt, A32, chunk_zero)
    chunk_decay = torch.exp(dt_c.sum(0)[:, :, None] * A32)  # (nC*b, D, N), exponent <= 0
    _, final = _carry_from(local, chunk_decay, zero, batch)
    period_decay = torch.exp(dt.sum(-1)[:, :, None] * A32)  # (b, D, N)

    weighted, total = _weighted_entry(final, period_decay, gamma32, zero)  # H, G

    # Pass 2: one copy from H with the drive scaled by G gives the weighted sum of the copies.
    h_in, _ = _carry_from(local * total, chunk_decay, weighted, batch)
    y = _scripted(_outputs)(dt_c, dtu_c * total[:, 0], Bt, Ct, A32, h_in)
    y = _from_chunks(y, batch, length)  # (b, D, L)
    if D is not None:
        y = y + (total * D.to(acc)[:, None]) * u32
    return y.to(u.dtype)


def export_selective_scan(u: Tensor,
                          delta: Tensor,
                          A: Tensor,
                          B: Tensor,
                          C: Tensor,
                          D: Optional[Tensor] = None,
                          delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = True) -> Tensor:
    """Plain selective scan (the ``export`` backend of :func:`.switch.selective_scan`): one copy, weight 1."""
    gamma = u.new_ones(u.shape[1], 1, dtype=torch.float32)
    return export_cycle_selective_scan(u, delta, A, B, C, D, delta_bias, gamma, delta_softplus)


__all__ = ['export_cycle_selective_scan', 'export_selective_scan']
