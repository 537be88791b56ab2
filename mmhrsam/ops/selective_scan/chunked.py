"""Selective scan in pure PyTorch, chunked so that no Python loop runs over the tokens.

Channels are independent, so the channels are processed in blocks of ``Dc``; inside a
block the length-L sequence is cut into ``nC`` chunks of ``T`` tokens (zero-padded at the
end: a padded token has ``dt = 0``, so it neither decays nor feeds the state) and:

1. *local pass*: every chunk is scanned from a zero state, all chunks at once: a loop over
   the T positions inside a chunk, each step one vectorized update of the
   (nC * batch, Dc, N) states. It yields each chunk's local final state.
2. *carry*: the state entering chunk k is
   ``h_in[k] = exp(A * sum(dt over chunk k-1)) * h_in[k-1] + local_final[k-1]``,
   a loop over the chunks on (batch, Dc, N) tensors.
3. *output pass*: the position loop again, started from ``h_in``, now emitting ``y``.

That is 2T + nC Python iterations (about 3 sqrt(L)), each a handful of ops on large
tensors, and 2 exps per (token, channel, state): the order of work of the sequential
recurrence itself. Why not Mamba-2's closed-form intra-chunk matrices: here the decay is
per channel *and* per state, so the (T, T) decay matrices cannot be shared over (D, N) and
would cost T times more exps and memory. Stability: the only exponentials formed are
``exp(dt * A) <= 1`` (dt >= 0, A < 0), never the exp of a cumulative sum's negative.

Memory: the forward pass (with or without autograd) holds a few (nC * batch, Dc, N)
states per block, updated in place; on CPU ``Dc`` is chosen so they stay in cache. The
backward pass (:class:`_ChunkedScanFunction`) recomputes one block at a time with autograd
through the out-of-place path, so it holds one block's graph, about 4-8 * Dc * N * L
floats per sample, with its own ``Dc`` keeping that near 128-256 MB (CPU) / 1-2 GB (CUDA).
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: batch * Dc * N * L_padded floats per block recomputed in the backward pass, by device type.
GRAD_BLOCK_ELEMS = {'cpu': 2**23, 'default': 2**26}
#: (nC * batch) * Dc * N floats per forward state tensor on CPU: about an L2 cache (measured best).
CPU_STATE_ELEMS = 2**19


def default_chunk_size(length: int) -> int:
    """T ~ sqrt(L) balances the 2T position steps against the nC carry steps."""
    return int(min(512, max(16, math.ceil(math.sqrt(length)))))


def default_channel_block(channels: int, d_state: int, length: int, chunk_size: int, batch: int,
                          differentiable: bool, device: torch.device) -> int:
    """Channels per block (see the module docstring for the memory model)."""
    padded = math.ceil(length / chunk_size) * chunk_size
    if differentiable:
        budget = GRAD_BLOCK_ELEMS.get(device.type, GRAD_BLOCK_ELEMS['default'])
        block = budget // (d_state * padded * batch)
    elif device.type == 'cpu':
        block = CPU_STATE_ELEMS // (d_state * batch * (padded // chunk_size))
    else:
        block = channels
    return max(1, min(channels, block))


def _to_chunks(x: Tensor, chunk_size: int, dtype: torch.dtype) -> Tensor:
    """(b, K, L) -> (T, nC * b, K) in ``dtype``, rows in (chunk, sample) order, zero-padded."""
    b, k, length = x.shape
    n_chunks = math.ceil(length / chunk_size)
    x = F.pad(x.to(dtype), (0, n_chunks * chunk_size - length))
    x = x.view(b, k, n_chunks, chunk_size).permute(3, 2, 0, 1).reshape(chunk_size, n_chunks * b, k)
    return x.contiguous()  # reshape is a strided view when b == 1; per-position slices must be dense


def _from_chunks(y: Tensor, batch: int, length: int) -> Tensor:
    """Inverse of :func:`_to_chunks`: (T, nC * b, K) -> (b, K, L)."""
    chunk_size, rows, k = y.shape
    n_chunks = rows // batch
    y = y.view(chunk_size, n_chunks, batch, k).permute(2, 3, 1, 0)
    return y.reshape(batch, k, n_chunks * chunk_size)[..., :length]


def _scan_positions(dt: Tensor, dtu: Tensor, Bt: Tensor, A: Tensor, h: Tensor, Ct: Optional[Tensor],
                    differentiable: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """Scan all chunks at once over their T positions, starting from ``h``.

    Args:
        dt (Tensor): (T, R, Dc) time steps, R = nC * batch.
        dtu (Tensor): (T, R, Dc) ``dt * u``.
        Bt (Tensor): (T, R, N).
        A (Tensor): (Dc, N).
        h (Tensor): (R, Dc, N) state entering each chunk; updated in place unless differentiable.
        Ct (Tensor, optional): (T, R, N); when given the outputs are computed.
        differentiable (bool): use out-of-place ops that autograd can record.

    Returns:
        tuple[Tensor, Tensor | None]: final states (R, Dc, N) and outputs (T, R, Dc) (no D skip).
    """
    if differentiable:  # unbind, not dt[t]: each select's backward would zero-fill all of dt (O(T^2))
        ys = []
        cs = Ct.unbind(0) if Ct is not None else (None, ) * dt.shape[0]
        for dt_t, dtu_t, b_t, c_t in zip(dt.unbind(0), dtu.unbind(0), Bt.unbind(0), cs):
            h = torch.addcmul(h * torch.exp(dt_t[:, :, None] * A), dtu_t[:, :, None], b_t[:, None, :])
            if c_t is not None:
                ys.append((h * c_t[:, None, :]).sum(-1))
        return h, (torch.stack(ys) if Ct is not None else None)
    decay = torch.empty_like(h)
    prod = torch.empty_like(h) if Ct is not None else None
    ys = dt.new_empty(dt.shape) if Ct is not None else None
    for t in range(dt.shape[0]):
        torch.mul(dt[t, :, :, None], A, out=decay).exp_()
        h.mul_(decay).addcmul_(dtu[t, :, :, None], Bt[t, :, None, :])
        if Ct is not None:
            torch.sum(torch.mul(h, Ct[t, :, None, :], out=prod), dim=-1, out=ys[t])
    return h, ys


def _carry(local: Tensor, decay: Tensor, batch: int, differentiable: bool) -> Tensor:
    """States entering every chunk from the local final states and whole-chunk decays.

    Args:
        local (Tensor): (nC * batch, Dc, N) each chunk's final state from a zero start.
        decay (Tensor): (nC * batch, Dc, N) ``exp(A * sum(dt))`` over each chunk.
        batch (int): batch size (rows are in (chunk, sample) order).
        differentiable (bool): use out-of-place ops.

    Returns:
        Tensor: (nC * batch, Dc, N); the first chunk's entry state is zero.
    """
    local = local.view(-1, batch, *local.shape[1:])  # (nC, batch, Dc, N)
    decay = decay.view(local.shape)
    if differentiable:
        states = [torch.zeros_like(local[0])]
        for local_k, decay_k in zip(local.unbind(0)[:-1], decay.unbind(0)[:-1]):  # unbind: see _scan_positions
            states.append(torch.addcmul(local_k, decay_k, states[-1]))
        return torch.stack(states).flatten(0, 1)
    states = torch.empty_like(local)
    states[0].zero_()
    for k in range(1, local.shape[0]):
        torch.addcmul(local[k - 1], decay[k - 1], states[k - 1], out=states[k])
    return states.flatten(0, 1)


def _scan_block(u: Tensor, delta: Tensor, delta_bias: Optional[Tensor], A: Tensor, D: Optional[Tensor],
                Bt: Tensor, Ct: Tensor, delta_softplus: bool, chunk_size: int) -> Tensor:
    """One block of channels: u, delta (b, Dc, L), A (Dc, N), Bt/Ct (T, R, N) -> y (b, Dc, L) in Bt's dtype."""
    differentiable = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, delta_bias, A, D, Bt, Ct))
    batch, channels, length = u.shape
    acc = Bt.dtype  # accumulation dtype: float32, or float64 for float64 inputs
    dt = delta.to(acc) if delta_bias is None else delta.to(acc) + delta_bias.to(acc)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    u, A = u.to(acc), A.to(acc)
    dt_c, dtu_c = _to_chunks(dt, chunk_size, acc), _to_chunks(dt * u, chunk_size, acc)  # (T, R, Dc)
    zero = dt_c.new_zeros(dt_c.shape[1], channels, A.shape[1])  # (R, Dc, N)
    local, _ = _scan_positions(dt_c, dtu_c, Bt, A, zero, None, differentiable)
    decay = torch.exp(dt_c.sum(0)[:, :, None] * A)  # (R, Dc, N), exponent <= 0
    h_in = _carry(local, decay, batch, differentiable)
    _, y = _scan_positions(dt_c, dtu_c, Bt, A, h_in, Ct, differentiable)
    y = _from_chunks(y, batch, length)
    return y if D is None else y + D.to(acc)[:, None] * u


def _slice(t: Optional[Tensor], sl: slice, dim: int) -> Optional[Tensor]:
    return None if t is None else t[(slice(None), ) * dim + (sl, )]


def _scan_no_grad(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                  delta_bias: Optional[Tensor], delta_softplus: bool, chunk_size: int, block: int) -> Tensor:
    """The in-place path over all channel blocks; (batch, D, L) in ``u``'s dtype."""
    acc = torch.float64 if u.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        Bt, Ct = _to_chunks(B, chunk_size, acc), _to_chunks(C, chunk_size, acc)  # (T, R, N)
        out = u.new_empty(u.shape)
        for start in range(0, u.shape[1], block):
            sl = slice(start, start + block)
            out[:, sl] = _scan_block(u[:, sl], delta[:, sl], _slice(delta_bias, sl, 0), A[sl], _slice(D, sl, 0),
                                     Bt, Ct, delta_softplus, chunk_size)
    return out


class _ChunkedScanFunction(torch.autograd.Function):
    """Forward on the fast in-place path; backward recomputes one channel block at a time.

    The backward of a block is autograd through :func:`_scan_block`'s differentiable path,
    so only one block's graph (~4-8 * batch * Dc * N * L floats) is alive at any time, and
    nothing of the forward is kept but its inputs.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus, chunk_size, fwd_block, bwd_block):
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias)
        ctx.config = (delta_softplus, chunk_size, bwd_block)
        return _scan_no_grad(u, delta, A, B, C, D, delta_bias, delta_softplus, chunk_size, fwd_block)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        u, delta, A, B, C, D, delta_bias = ctx.saved_tensors
        delta_softplus, chunk_size, block = ctx.config
        needs = ctx.needs_input_grad[:7]
        grads = [torch.zeros_like(t) if t is not None and need else None
                 for t, need in zip((u, delta, A, B, C, D, delta_bias), needs)]
        acc = torch.float64 if u.dtype == torch.float64 else torch.float32
        Bt = _to_chunks(B.detach(), chunk_size, acc).requires_grad_(needs[3])  # (T, R, N) leaves shared by blocks
        Ct = _to_chunks(C.detach(), chunk_size, acc).requires_grad_(needs[4])
        dBt, dCt = torch.zeros_like(Bt), torch.zeros_like(Ct)
        # (argument of _scan_block, index in the inputs, dim sliced by channel block)
        block_args = ((u, 0, 1), (delta, 1, 1), (delta_bias, 6, 0), (A, 2, 0), (D, 5, 0))
        for start in range(0, u.shape[1], block):
            sl = slice(start, start + block)
            leaves = [None if t is None else _slice(t, sl, dim).detach().requires_grad_(needs[i])
                      for t, i, dim in block_args]
            with torch.enable_grad(), torch.autocast(u.device.type, enabled=False):
                y = _scan_block(*leaves, Bt, Ct, delta_softplus, chunk_size)
            inputs = [t for t in leaves + [Bt, Ct] if t is not None and t.requires_grad]
            block_grads = iter(torch.autograd.grad(y, inputs, grad_y[:, sl].to(y.dtype)))
            for t, (_, i, dim) in zip(leaves, block_args):
                if t is not None and t.requires_grad:
                    _slice(grads[i], sl, dim).copy_(next(block_grads))
            if Bt.requires_grad:
                dBt += next(block_grads)
            if Ct.requires_grad:
                dCt += next(block_grads)
        if needs[3]:
            grads[3] = _from_chunks(dBt, B.shape[0], B.shape[2]).to(B.dtype)
        if needs[4]:
            grads[4] = _from_chunks(dCt, C.shape[0], C.shape[2]).to(C.dtype)
        return (*grads, None, None, None, None)


def chunked_selective_scan(u: Tensor,
                           delta: Tensor,
                           A: Tensor,
                           B: Tensor,
                           C: Tensor,
                           D: Optional[Tensor] = None,
                           delta_bias: Optional[Tensor] = None,
                           delta_softplus: bool = True,
                           chunk_size: Optional[int] = None,
                           channel_block: Optional[int] = None) -> Tensor:
    """Selective scan, chunked pure PyTorch (any device, autograd, fp32 state; fp64 for fp64 inputs).

    Args:
        u (Tensor): (batch, D, L) input, any float dtype.
        delta (Tensor): (batch, D, L) time steps before the bias and softplus.
        A (Tensor): (D, N) state matrix, negative for a stable scan.
        B (Tensor): (batch, N, L), one group shared by all channels.
        C (Tensor): (batch, N, L), one group shared by all channels.
        D (Tensor, optional): (D,) skip weight.
        delta_bias (Tensor, optional): (D,) added to ``delta``.
        delta_softplus (bool): apply softplus to ``delta + delta_bias``.
        chunk_size (int, optional): tokens per chunk; default ~sqrt(L).
        channel_block (int, optional): channels per block (forward and backward); default from
            the memory model.

    Returns:
        Tensor: (batch, D, L) in ``u``'s dtype.
    """
    batch, channels, length = u.shape
    chunk_size = chunk_size or default_chunk_size(length)
    fwd_block, bwd_block = (channel_block or default_channel_block(
        channels, A.shape[1], length, chunk_size, batch, differentiable, u.device) for differentiable in (False, True))
    with torch.autocast(u.device.type, enabled=False):  # fp32 state whatever the caller's autocast
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                           for t in (u, delta, A, B, C, D, delta_bias)):
            return _ChunkedScanFunction.apply(u, delta, A, B, C, D, delta_bias, delta_softplus, chunk_size,
                                              fwd_block, bwd_block)
        return _scan_no_grad(u, delta, A, B, C, D, delta_bias, delta_softplus, chunk_size, fwd_block)
