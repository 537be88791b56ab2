"""Selective scan in Triton: chunked forward and backward, JIT-compiled on first use.

Same arguments and semantics as the other backends (``u, delta`` (batch, D, L), ``A`` (D, N),
one B/C group (batch, N, L), optional ``D`` skip and ``delta_bias``, softplus on the time
step; fp32 state, output in ``u``'s dtype). Launch tuning goes through :class:`ScanTuning`.
The design and its cost model are written up in ``docs/scan_kernel_notes.md``.

Notation, per sample and channel (the N states of a channel form one column)::

    dt_t = softplus(delta_t + delta_bias)   a_t = exp(dt_t A)   x_t = dt_t u_t B_t   c_t = C_t dy_t
    h_t = a_t h_{t-1} + x_t                 y_t = <C_t, h_t> + D u_t
    g_t = dL/dh_t = c_t + a_{t+1} g_{t+1}   (the adjoint, walked backwards)

The tokens are cut into NC chunks of T tokens (chunk k: tokens t0..t1); chunk boundary k sits
before chunk k's first token, boundary NC after the last token.

Forward, three launches (``BLOCK_D = 32 * fwd_warps`` channels per program):

1. ``_fwd_chunk_state``: every chunk scanned from a zero state -> ``h_local``, ``dt_sum``.
2. ``_carry``: ``h_in[k + 1] = exp(A dt_sum[k]) h_in[k] + h_local[k]``, an associative scan over
   blocks of chunks (tiny).
3. ``_fwd_chunk_out``: every chunk rescanned from ``h_in[k]``, writing y.

Every program keeps its state as an (NP, BLOCK_D) fp32 tensor with the N states of a channel
inside one thread (the default Triton layout for that shape: lanes and warps along the
channels), so ``<C_t, h_t>`` is an in-thread sum; the inputs are read as (TT, BLOCK_D) tiles
of ``TT`` consecutive tokens per thread (one 16-byte vector when the token axis is
contiguous), and the ``TT`` steps of a tile are unrolled, each row picked out of the tile by
a constant mask that the compiler folds into a register move. ``exp`` is ``exp2`` with
``log2(e)`` folded into A (``A2 = A log2(e)``); optionally the first ``NPOLY`` state rows compute
it with a polynomial on the FMA pipe (``_exp2_fma``) to unload the special-function units.

Backward, four launches: the adjoint is chunked in reverse the same way
(``_bwd_chunk_adjoint``, then ``_carry`` in reverse -> ``g_in``), then ``_bwd_chunk_forward``
(forward walk from ``h_in``) and ``_bwd_chunk_reverse`` (reverse walk from ``g_in``) produce all
gradients. The term that needs the forward state and the adjoint at the same step,
``e_t = g_t a_t h_{t-1}`` (for ``dA`` and ``d delta``), is obtained without storing any per-step
state, from the identity ``g_t h_t - g_{t-1} h_{t-1} = g_t x_t - c_{t-1} h_{t-1}``, which gives, in
a chunk t0..t1::

    e_t = K - P_t - Z_t,   P_t = sum_{t0 <= r < t} c_r h_r,   Z_t = sum_{t <= r <= t1} g_r x_r,
    K = g_in[k + 1] h_{t1} + P_{t1 + 1}

``P`` is a prefix that only the forward walk needs, ``Z`` a suffix that only the reverse walk
needs (derivation and rounding in the notes). Reductions over channels (``dB``, ``dC``) are
per-channel-block partial sums (on the tensor cores, see ``_dsum``) summed with torch,
deterministic; reductions over time (``dA``, ``dD``, ``d delta_bias``) are per-chunk partials,
also summed with torch.

Buffers (fp32), named after what they hold:

==============  =====================  ================================================================
name            shape                  holds
==============  =====================  ================================================================
``BC``          (batch, Lp, 2, NP)     B_t and C_t side by side per token, zero-padded (Lp = NC T)
``h_local``     (batch, NC, N, D)      each chunk's final state, scanned from zero
``dt_sum``      (batch, NC, D)         ``S_k``, the sum of dt over chunk k
``h_in``        (batch, NC + 1, N, D)  the state at each chunk boundary (h_in[0]: the initial state,
                                       h_in[NC]: the final state)
``g_local``     (batch, NC, N, D)      ``a_{t0} g_{t0}`` of each chunk's adjoint walked from zero
``g_in``        (batch, NC + 1, N, D)  ``dL / dh_in``: the adjoint at each chunk boundary,
                                       ``a_{t0} g_{t0}`` of the chunk after it (g_in[0]: the
                                       initial state's gradient; g_in[NC]: the final state's,
                                       0 for a plain scan)
``AP``          (batch, D, Lp)         ``sum_n A P_t`` per token (forward walk -> reverse walk)
``P_end``       (batch, NC, N, D)      ``P_{t1 + 1}``, P after the chunk's last token
``dtP_sum``     (batch, NC, N, D)      ``sum_t dt_t P_t`` over the chunk
``u_scale``     (D,)                   per-channel input scale: the scan's input is ``u * u_scale``
                                       (Cycle-scan's Gamma, :mod:`.triton_cycle_scan`)
``ddt_const``   (batch, D)             a constant added to every d dt (Cycle-scan: d sum_t dt_t)
``d*_part``     (batch, NC, [N,] D)    per-chunk partial sums of dA, dD, d delta_bias, d u_scale;
                (blocks, batch, Lp,    per-channel-block partial sums of dB, dC
                NP)
==============  =====================  ================================================================

Compile-time flags (``tl.constexpr``) and the kernels that take them; every chunk kernel also
takes ``N``, ``NP`` (N padded to a power of two), ``TT`` (tokens per unrolled tile), ``BLOCK_D``,
``HAS_BIAS`` (delta_bias given) and ``SOFTPLUS``:

===============  ============================================  ======================================
flag             meaning                                       kernels
===============  ============================================  ======================================
``NPOLY``        state rows whose exp2 runs on the FMA pipe    ``_fwd_chunk_state``, ``_fwd_chunk_out``,
                 (:class:`ScanTuning` ``npoly``)               ``_bwd_chunk_adjoint``
``HAS_D``        D skip term                                   ``_fwd_chunk_out``, ``_bwd_chunk_reverse``
``HAS_USCALE``   input is ``u * u_scale`` (Cycle-scan's        ``_fwd_chunk_out``, ``_bwd_chunk_forward``,
                 weighted scan; False for the plain scan)      ``_bwd_chunk_reverse``
``RED``          channel reductions: 0 butterfly, 1 tf32 MMA,  ``_bwd_chunk_forward``,
                 2 split tf32 MMA (``_dsum``)                  ``_bwd_chunk_reverse``,
                                                               ``_bwd_chunk_final_state``
``REVERSE``      carry direction (forward states / adjoints)   ``_carry``
``CB``, ``BLK``  chunks, (n, d) pairs per carry program        ``_carry`` and Cycle-scan's carries
===============  ============================================  ======================================

Cycle-scan's periodic op (:mod:`.triton_cycle_scan`) launches the same kernels with ``u_scale``
and an initial state (``h_in[0]``), and adds one reverse walk without output gradient for the
copy's final state, ``_bwd_chunk_final_state`` (with ``ddt_const``, adding into the buffers).
"""
import math
import os
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from ..switch import BackendUnavailableError

try:  # never fail at import: the backend reports itself unavailable instead
    import triton
    import triton.language as tl
except Exception as _e:  # noqa: BLE001  ImportError, or a triton built for another torch
    triton = tl = None
    TRITON_IMPORT_ERROR = f'{type(_e).__name__}: {_e}'
else:
    TRITON_IMPORT_ERROR = ''

#: True when the kernels below were defined under TRITON_INTERPRET=1 (they then run on CPU tensors).
INTERPRETED = triton is not None and os.environ.get('TRITON_INTERPRET', '0') == '1'

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
#: Channel blocks of the backward kernels: one warp, so the reductions over channels stay in a warp.
BWD_NUM_WARPS = 1
#: (chunk, flattened (n, d)) tile of the carry kernel.
CARRY_CHUNKS, CARRY_BLOCK, CARRY_WARPS = 16, 256, 4


@dataclass(frozen=True)
class ScanTuning:
    """Launch tuning of the Triton scan (benchmarks, tests); the defaults are the measured best.

    Args:
        chunk (int, optional): tokens per chunk (rounded up to a multiple of the token tile).
            None: about 32 one-warp programs per SM (see :func:`default_config`).
        fwd_warps (int): warps per program of the forward kernels (``BLOCK_D = 32 * fwd_warps``
            channels); 1, 2, 4 or 8.
        npoly (tuple[int, int]): state rows whose exp2 runs as a polynomial on the FMA pipe, in the
            SFU-bound kernels (chunk states, local adjoint) and in the output kernel.
        red (int, optional): channel reductions of the backward (``_dsum``): 0 butterfly, 1 tf32
            MMA, 2 split tf32 MMA. Changes the gradients' rounding. None: 1 for 16-bit inputs,
            2 for fp32, 0 when N < 16 or fewer than 16 channels per program (tl.dot needs 16 x 16).
        block_d (int, optional): channels per program of every chunk kernel, forward and backward
            (a power of two); None: 32 per warp.

    Raises:
        ValueError: a field out of range.
    """
    chunk: Optional[int] = None
    fwd_warps: int = 1
    npoly: Tuple[int, int] = (0, 0)
    red: Optional[int] = None
    block_d: Optional[int] = None

    def __post_init__(self):
        if self.chunk is not None and (not isinstance(self.chunk, int) or self.chunk < 1):
            raise ValueError(f'ScanTuning.chunk must be a positive int or None, got {self.chunk!r}')
        if self.fwd_warps not in (1, 2, 4, 8):
            raise ValueError(f'ScanTuning.fwd_warps must be 1, 2, 4 or 8, got {self.fwd_warps!r}')
        npoly = tuple(self.npoly) if isinstance(self.npoly, (tuple, list)) else None
        if npoly is None or len(npoly) != 2 or not all(isinstance(x, int) and x >= 0 for x in npoly):
            raise ValueError(f'ScanTuning.npoly must be two non-negative ints (state, out), got {self.npoly!r}')
        object.__setattr__(self, 'npoly', npoly)  # a JSON list becomes the documented tuple
        if self.red not in (None, 0, 1, 2):
            raise ValueError(f'ScanTuning.red must be 0, 1, 2 or None, got {self.red!r}')
        if self.block_d is not None and (not isinstance(self.block_d, int) or self.block_d < 1
                                         or self.block_d & (self.block_d - 1)):
            raise ValueError(f'ScanTuning.block_d must be a power of two or None, got {self.block_d!r}')


class ScanConfig(NamedTuple):
    """What is launched: a :class:`ScanTuning` resolved for one input (see :func:`default_config`)."""
    chunk: int  # T, tokens per chunk (a multiple of both tiles)
    tile: int  # TT of the forward kernels, tokens per unrolled tile
    bwd_tile: int  # TT of the backward kernels (4: their register budget is tight)
    fwd_warps: int  # forward kernels: BLOCK_D = 32 * fwd_warps channels per program
    bwd_warps: int
    npoly: int  # state rows whose exp2 runs on the FMA pipe in the SFU-bound kernels (phase 1, adjoint)
    npoly_out: int  # same for the output kernel (less FMA headroom)
    fwd_block_d: int
    bwd_block_d: int
    red: int  # channel reductions of the backward: 0 butterfly, 1 tf32 MMA, 2 split tf32 MMA (see _dsum)


def _num_sms(device: torch.device) -> int:
    if device.type == 'cuda':
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def _default_chunk(u: Tensor, bwd_block_d: int, tile: int) -> int:
    """About 32 programs of ``bwd_block_d`` channels per SM, a power of two in [64, 512], at most L rounded up."""
    batch, channels, length = u.shape
    programs_wanted = 32 * _num_sms(u.device)
    per_program = length * batch * math.ceil(channels / bwd_block_d) / programs_wanted
    chunk = int(min(512, max(64, 2**round(math.log2(max(per_program, 1))))))
    return min(chunk, max(tile, 2**math.ceil(math.log2(max(length, 1)))))


def default_config(u: Tensor, d_state: int, tuning: ScanTuning = ScanTuning()) -> ScanConfig:
    """The launch configuration for ``u`` (batch, D, L): ``tuning``'s fields, heuristics where None.

    No autotuning, so the first call only pays Triton's JIT:

    * ``tile``: one 16-byte vector of tokens per thread (4 fp32 / 8 bf16), the widest tile whose
      (tile, BLOCK_D) load layout keeps the tile's tokens inside one thread.
    * ``fwd_warps`` 1 (32 channels per program, 128-152 registers): measured on the H100 against
      2 and 4 warps (``tools/analysis/benchmark_cycle_scan.py --sweep``): the periodic forward at
      L0 = 16,384 takes 0.35 / 0.39 ms (bf16 / fp32 device time) against 0.46 / 0.60 with 2 warps.
    * ``chunk``: about 32 programs of 32 channels per SM (power of two in [64, 512]), the grid of
      the one-warp backward walks, whose chunking must match the forward's saved states; shorter
      chunks only add carry work, longer ones leave SMs idle at the tail and lengthen the sums of
      the backward identity (H100, periodic op at L0 = 16,384: chunk 128 gives the walks 1.63 ms,
      chunk 256 2.04 ms).
    * ``red``: 1 (tf32 MMA) for 16-bit inputs, 2 (split tf32, ~fp32 accurate) for fp32 inputs, 0
      when N < 16 or fewer than 16 channels per program (see ``_dsum``).
    * ``npoly`` (0, 0): the SASS cost model (notes) put the balance near (4, 2) for N = 32, but
      the H100 sweep of ``tools/analysis/benchmark_scan.py`` found no gain.

    Args:
        u (Tensor): the scan's input (batch, D, L); its dtype, device and length set the defaults.
        d_state (int): N.
        tuning (ScanTuning): explicit choices (default: none).

    Raises:
        ValueError: ``tuning.red`` asks for the tensor cores where tl.dot cannot run (N < 16 or
            fewer than 16 channels per program).
    """
    tile = max(1, 16 // u.element_size())
    fwd_block_d = tuning.block_d or 32 * tuning.fwd_warps
    bwd_block_d = tuning.block_d or 32 * BWD_NUM_WARPS
    chunk_size = tuning.chunk or _default_chunk(u, bwd_block_d, tile)
    chunk = max(tile, math.ceil(chunk_size / tile) * tile)
    npoly_state, npoly_out = (min(x, d_state) for x in tuning.npoly)
    dot_ok = _next_pow2(d_state) >= 16 and bwd_block_d >= 16  # tl.dot needs 16 x 16 operands
    if tuning.red is None:
        red = (1 if u.element_size() < 4 else 2) if dot_ok else 0
    elif tuning.red and not dot_ok:
        raise ValueError(f'ScanTuning.red={tuning.red} needs N >= 16 and >= 16 channels per program, '
                         f'got N = {d_state}, {bwd_block_d} channels')
    else:
        red = tuning.red
    return ScanConfig(chunk, tile, min(tile, 4), tuning.fwd_warps, BWD_NUM_WARPS, npoly_state, npoly_out,
                      fwd_block_d, bwd_block_d, red)


def triton_unavailable(u: Tensor) -> Optional[str]:
    """Why the triton backend cannot run on ``u`` (None when it can).

    CUDA tensors need an importable triton. CPU tensors run only when these kernels were
    defined under ``TRITON_INTERPRET=1`` (Triton's interpreter: slow, for tests); ``auto`` never
    picks this backend for CPU tensors (see :mod:`.switch`).
    """
    if triton is None:
        return f"scan backend 'triton' needs triton (pip install triton): {TRITON_IMPORT_ERROR}"
    if u.is_cuda:
        if INTERPRETED:
            return "scan backend 'triton': kernels were defined under TRITON_INTERPRET=1, which runs CPU tensors only"
        return None
    if INTERPRETED:
        return None
    return (f"scan backend 'triton' runs on CUDA tensors, got {u.device} "
            "(or CPU tensors with TRITON_INTERPRET=1 set before the kernels are imported)")


# ----------------------------------------------------------------------------- kernels
if triton is not None:
    _LN2 = tl.constexpr(LN2)
    _LOG2E = tl.constexpr(LOG2E)

    @triton.jit
    def _softplus(z):
        """log(1 + e^z) with the rounding of 1 + e^z compensated (exact for very negative z)."""
        e = tl.exp(tl.minimum(z, 20.0))
        w = 1.0 + e
        corr = e - (w - 1.0)  # what 1 + e lost; log(w + corr) ~ log(w) + corr / w, 1/w ~ 2 - w is ample here
        return tl.where(z > 20.0, z, tl.log(w) + corr * (2.0 - w))

    @triton.jit
    def _sigmoid(z):
        e = tl.exp(tl.minimum(z, 20.0))
        return e / (1.0 + e)

    @triton.jit
    def _exp2_fma(x):
        """2^x for x <= 0 without the special-function units: 1.9e-7 max relative error."""
        x = tl.maximum(x, -126.0)
        r = (x + 12582912.0) - 12582912.0  # round to nearest (1.5 * 2^23)
        f = x - r  # in [-0.5, 0.5]
        p = 0.001326472731307149 * f + 0.009671512991189957
        p = p * f + 0.05550733581185341
        p = p * f + 0.24022242426872253
        p = p * f + 0.6931470036506653
        p = p * f + 1.0
        k = (x + 12582912.0).to(tl.int32, bitcast=True) - 0x4B400000  # round(x) as an integer
        return (p.to(tl.int32, bitcast=True) + (k << 23)).to(tl.float32, bitcast=True)

    @triton.jit
    def _decay(x, n, NPOLY: tl.constexpr):
        """exp2(x) for an (NP, BLOCK_D) tile; rows n < NPOLY on the FMA pipe (n is in-thread: folded)."""
        if NPOLY > 0:
            return tl.where(n[:, None] < NPOLY, _exp2_fma(x), tl.exp2(x))
        else:
            return tl.exp2(x)

    @triton.jit
    def _load_A2(A_ptr, d, dmask, sA_d, sA_n, n, N: tl.constexpr, NP: tl.constexpr, BLOCK_D: tl.constexpr):
        """(NP, BLOCK_D) tile of A * log2(e) (A is (D, N), any strides); zero rows beyond N."""
        x = tl.zeros((NP, BLOCK_D), tl.float32)
        for i in tl.static_range(N):
            row = tl.load(A_ptr + d * sA_d + i * sA_n, mask=dmask, other=0.0).to(tl.float32)
            x = tl.where(n[:, None] == i, row[None, :], x)
        return x * _LOG2E

    @triton.jit
    def _load_rows(ptr, d, dmask, row_stride, n, N: tl.constexpr, NP: tl.constexpr, BLOCK_D: tl.constexpr):
        """(NP, BLOCK_D) fp32 tile from N rows of BLOCK_D channels, one row load at a time.

        Loading row by row keeps the tile in the compute layout (N inside a thread); a single
        2-D load would impose its coalesced layout on everything it touches.
        """
        x = tl.zeros((NP, BLOCK_D), tl.float32)
        for i in tl.static_range(N):
            row = tl.load(ptr + i * row_stride + d, mask=dmask, other=0.0)
            x = tl.where(n[:, None] == i, row[None, :], x)
        return x

    @triton.jit
    def _store_rows(ptr, x, d, dmask, row_stride, n, N: tl.constexpr):
        for i in tl.static_range(N):
            row = tl.sum(tl.where(n[:, None] == i, x, 0.0), axis=0)
            tl.store(ptr + i * row_stride + d, row, mask=dmask)

    @triton.jit
    def _dsum(q, ones, RED: tl.constexpr):
        """sum over the channel axis of an (NP, BLOCK_D) tile -> (NP,).

        RED 0: Triton's reduction (a 5-round butterfly per state row: ~10 instructions per
        element). RED 1: on the tensor cores, ``q @ ones`` in tf32 (~2 per element; 11-bit
        mantissa products, for 16-bit inputs). RED 2: the same with q split into a tf32-exact
        high part and the remainder (two MMAs, ~22-bit accurate: fp32 inputs).
        """
        if RED == 0:
            return tl.sum(q, axis=1)
        elif RED == 1:
            return tl.max(tl.dot(q, ones, input_precision='tf32'), axis=1)
        else:
            qh = (q.to(tl.int32, bitcast=True) & -8192).to(tl.float32, bitcast=True)
            r = tl.dot(qh, ones, input_precision='tf32')
            r = tl.dot(q - qh, ones, r, input_precision='tf32')
            return tl.max(r, axis=1)

    @triton.jit
    def _pick(tile, sel):
        """Row of a (TT, BLOCK_D) tile by a constant one-hot mask (in-thread: a register move)."""
        return tl.sum(tl.where(sel, tile, 0.0), axis=0)

    @triton.jit
    def _dt_tile(delta_ptrs, m, bias, SOFTPLUS: tl.constexpr):
        """(TT, BLOCK_D) tiles of dt (zero outside the mask) and of its pre-activation z = delta + bias."""
        z = tl.load(delta_ptrs, mask=m, other=0.0).to(tl.float32) + bias[None, :]
        if SOFTPLUS:
            dt = _softplus(z)
        else:
            dt = z
        return tl.where(m, dt, 0.0), z


    @triton.jit
    def _program_block(D, BLOCK_D: tl.constexpr, NP: tl.constexpr, TT: tl.constexpr):
        """Prologue of the chunk kernels (grid (chunks, channel blocks, batch)): chunk ``pc``, channel
        block ``pd``, sample ``pb`` (int64: it scales whole-sample offsets), the block's channels ``d``
        and their mask, the state rows ``n`` and the token offsets ``tt`` of a tile."""
        pc = tl.program_id(0)
        pd = tl.program_id(1)
        pb = tl.program_id(2).to(tl.int64)
        d = pd * BLOCK_D + tl.arange(0, BLOCK_D)
        return pc, pd, pb, d, d < D, tl.arange(0, NP), tl.arange(0, TT)

    @triton.jit
    def _channel_vector(ptr, d, dmask, PRESENT: tl.constexpr, BLOCK_D: tl.constexpr):
        """(BLOCK_D,) fp32 per-channel input (delta_bias, D, u_scale); zeros when absent (ptr is None)."""
        if PRESENT:
            return tl.load(ptr + d, mask=dmask, other=0.0)
        else:
            return tl.zeros((BLOCK_D, ), tl.float32)

    @triton.jit
    def _rows_of(ptr, pb, d, s_b, s_d):
        """(1, BLOCK_D) pointers to token 0 of sample ``pb``'s channels ``d`` in a (batch, D, L) tensor."""
        return ptr + pb * s_b + d[None, :] * s_d

    @triton.jit
    def _token_tile(t0, tb, tt, L, dmask):
        """Tokens of the tile at ``t0 + tb`` and the (TT, BLOCK_D) mask of its valid (token, channel) pairs."""
        t = t0 + tb + tt
        return t, (t < L)[:, None] & dmask[None, :]

    @triton.jit
    def _input_tile(u_ptrs, delta_ptrs, m, bias, u_scale, HAS_USCALE: tl.constexpr, SOFTPLUS: tl.constexpr):
        """(TT, BLOCK_D) fp32 tiles of one token tile: u as stored, the scan's input (u * u_scale with
        HAS_USCALE, else u), dt and its pre-activation z (``_dt_tile``), and dt times the input."""
        u_in = tl.load(u_ptrs, mask=m, other=0.0).to(tl.float32)
        if HAS_USCALE:
            uu = u_in * u_scale[None, :]
        else:
            uu = u_in
        dt, z = _dt_tile(delta_ptrs, m, bias, SOFTPLUS)
        return u_in, uu, dt, z, dt * uu

    @triton.jit
    def _chunk_end(g_in_ptr, h_in_ptr, pb, pc, NC, d, dmask, D, n, N: tl.constexpr, NP: tl.constexpr,
                   BLOCK_D: tl.constexpr):
        """At the end of chunk ``pc``: the adjoint entering it from the right, g_in[pc + 1], and
        g_in[pc + 1] * h_in[pc + 1] (the identity's K, less P_end)."""
        at = (pb * (NC + 1) + pc + 1) * N * D
        g_next = _load_rows(g_in_ptr + at, d, dmask, D, n, N, NP, BLOCK_D)
        h_end = _load_rows(h_in_ptr + at, d, dmask, D, n, N, NP, BLOCK_D)
        return g_next, g_next * h_end

    @triton.jit
    def _ddelta_tile(ddt, z, m, SOFTPLUS: tl.constexpr):
        """d delta from d dt through the softplus, zero outside the mask."""
        if SOFTPLUS:
            ddelta = ddt * _sigmoid(z)
        else:
            ddelta = ddt
        return tl.where(m, ddelta, 0.0)

    @triton.jit
    def _store_tile(ptrs, x, m, ACCUM: tl.constexpr):
        """Store an fp32 tile in the buffer's dtype; with ACCUM, added to what the buffer holds."""
        if ACCUM:
            x += tl.load(ptrs, mask=m, other=0.0).to(tl.float32)
        tl.store(ptrs, x.to(ptrs.dtype.element_ty), mask=m)

    @triton.jit
    def _fwd_chunk_state(u_ptr, delta_ptr, delta_bias_ptr, A_ptr, BC_ptr, h_local_ptr, dt_sum_ptr,  #
                         L, D, NC, Lp, T, sA_d, sA_n, su_b, su_d, su_l, sdelta_b, sdelta_d, sdelta_l,  #
                         N: tl.constexpr, NP: tl.constexpr, TT: tl.constexpr, BLOCK_D: tl.constexpr,
                         HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, NPOLY: tl.constexpr):
        """Forward phase 1: each chunk scanned from a zero state -> h_local (its final state) and dt_sum."""
        pc, pd, pb, d, dmask, n, tt = _program_block(D, BLOCK_D, NP, TT)
        A2 = _load_A2(A_ptr, d, dmask, sA_d, sA_n, n, N, NP, BLOCK_D)
        bias = _channel_vector(delta_bias_ptr, d, dmask, HAS_BIAS, BLOCK_D)
        u_rows = _rows_of(u_ptr, pb, d, su_b, su_d)
        delta_rows = _rows_of(delta_ptr, pb, d, sdelta_b, sdelta_d)
        bc_base = BC_ptr + pb * Lp * 2 * NP + n
        h = tl.zeros((NP, BLOCK_D), tl.float32)
        S = tl.zeros((BLOCK_D, ), tl.float32)
        t0 = pc * T
        for tb in range(0, T, TT):
            t, m = _token_tile(t0, tb, tt, L, dmask)
            _, uu, dt, z, dtu = _input_tile(u_rows + t[:, None] * su_l, delta_rows + t[:, None] * sdelta_l, m, bias,
                                            None, False, SOFTPLUS)
            S += tl.sum(dt, axis=0)
            for j in tl.static_range(TT):
                sel = tt[:, None] == j
                dt_j = _pick(dt, sel)
                dtu_j = _pick(dtu, sel)
                Bj = tl.load(bc_base + (t0 + tb + j) * (2 * NP))
                h = _decay(dt_j[None, :] * A2, n, NPOLY) * h + dtu_j[None, :] * Bj[:, None]
        out = pb * NC + pc
        _store_rows(h_local_ptr + out * N * D, h, d, dmask, D, n, N)
        tl.store(dt_sum_ptr + out * D + d, S, mask=dmask)

    @triton.jit
    def _fwd_chunk_out(u_ptr, delta_ptr, delta_bias_ptr, A_ptr, BC_ptr, D_skip_ptr, u_scale_ptr, h_in_ptr, y_ptr,  #
                       L, D, NC, Lp, T, sA_d, sA_n, su_b, su_d, su_l, sdelta_b, sdelta_d, sdelta_l, sy_b, sy_d, sy_l,
                       N: tl.constexpr, NP: tl.constexpr, TT: tl.constexpr, BLOCK_D: tl.constexpr,
                       HAS_BIAS: tl.constexpr, HAS_D: tl.constexpr, SOFTPLUS: tl.constexpr, NPOLY: tl.constexpr,
                       HAS_USCALE: tl.constexpr):
        """Forward phase 3: each chunk rescanned from its entry state h_in[k] -> y (input u * u_scale with
        HAS_USCALE)."""
        pc, pd, pb, d, dmask, n, tt = _program_block(D, BLOCK_D, NP, TT)
        A2 = _load_A2(A_ptr, d, dmask, sA_d, sA_n, n, N, NP, BLOCK_D)
        h = _load_rows(h_in_ptr + (pb * (NC + 1) + pc) * N * D, d, dmask, D, n, N, NP, BLOCK_D)
        bias = _channel_vector(delta_bias_ptr, d, dmask, HAS_BIAS, BLOCK_D)
        D_skip = _channel_vector(D_skip_ptr, d, dmask, HAS_D, BLOCK_D)
        u_scale = _channel_vector(u_scale_ptr, d, dmask, HAS_USCALE, BLOCK_D)
        u_rows = _rows_of(u_ptr, pb, d, su_b, su_d)
        delta_rows = _rows_of(delta_ptr, pb, d, sdelta_b, sdelta_d)
        y_rows = _rows_of(y_ptr, pb, d, sy_b, sy_d)
        bc_base = BC_ptr + pb * Lp * 2 * NP + n
        t0 = pc * T
        for tb in range(0, T, TT):
            t, m = _token_tile(t0, tb, tt, L, dmask)
            _, uu, dt, z, dtu = _input_tile(u_rows + t[:, None] * su_l, delta_rows + t[:, None] * sdelta_l, m, bias,
                                            u_scale, HAS_USCALE, SOFTPLUS)
            ytile = D_skip[None, :] * uu
            for j in tl.static_range(TT):
                sel = tt[:, None] == j
                dt_j = _pick(dt, sel)
                dtu_j = _pick(dtu, sel)
                bc = bc_base + (t0 + tb + j) * (2 * NP)
                Bj = tl.load(bc)
                Cj = tl.load(bc + NP)
                h = _decay(dt_j[None, :] * A2, n, NPOLY) * h + dtu_j[None, :] * Bj[:, None]
                y_j = tl.sum(h * Cj[:, None], axis=0)
                ytile = tl.where(sel, ytile + y_j[None, :], ytile)
            tl.store(y_rows + t[:, None] * sy_l, ytile.to(y_ptr.dtype.element_ty), mask=m)

    @triton.jit
    def _carry_lanes(A_ptr, ND, D, sA_d, sA_n, BLK: tl.constexpr):
        """This program's BLK flattened (n, d) pairs of one sample: (sample, idx, mask, d, A * log2(e))."""
        pb = tl.program_id(1).to(tl.int64)
        idx = tl.program_id(0) * BLK + tl.arange(0, BLK)
        imask = idx < ND
        dcol = idx % D
        A2 = tl.load(A_ptr + dcol * sA_d + (idx // D) * sA_n, mask=imask, other=0.0).to(tl.float32) * _LOG2E
        return pb, idx, imask, dcol, A2

    @triton.jit
    def _carry_pass(local_ptr, dt_sum_ptr, out_ptr, pb, idx, imask, dcol, A2, carry, scale, NC, ND, D,
                    REVERSE: tl.constexpr, CB: tl.constexpr, BLK: tl.constexpr, HAS_LOCAL: tl.constexpr,
                    HAS_SCALE: tl.constexpr):
        """Boundary values from ``carry`` (S_k = dt_sum[k]): forward out[k+1] = exp2(A2*S_k) out[k] +
        scale * local_k, out[0] = carry; reverse out[k] = exp2(A2*S_k) out[k+1] + scale * local_k,
        out[NC] = carry (local zero without HAS_LOCAL: ``local_ptr`` unread; ``scale`` read only with
        HAS_SCALE). Blocks of CB chunks at a time are combined by an associative scan, the running
        value carried between blocks. Returns the last value and sum_k S_k.
        """
        rows = tl.arange(0, CB)
        if REVERSE:
            tl.store(out_ptr + (pb * (NC + 1) + NC) * ND + idx, carry, mask=imask)
        else:
            tl.store(out_ptr + pb * (NC + 1) * ND + idx, carry, mask=imask)
        S_total = tl.zeros((BLK, ), tl.float32)
        for c0 in range(0, NC, CB):
            if REVERSE:
                k = NC - 1 - (c0 + rows)
            else:
                k = c0 + rows
            kmask = (c0 + rows) < NC
            m = kmask[:, None] & imask[None, :]
            S = tl.load(dt_sum_ptr + (pb * NC + k[:, None]) * D + dcol[None, :], mask=m, other=0.0)
            S_total += tl.sum(S, axis=0)
            dec = tl.exp2(A2[None, :] * S)
            if HAS_LOCAL:
                loc = tl.load(local_ptr + (pb * NC + k[:, None]) * ND + idx[None, :], mask=m, other=0.0)
                if HAS_SCALE:
                    loc = loc * scale[None, :]
            else:
                loc = tl.zeros((CB, BLK), tl.float32)
            P, H = tl.associative_scan((dec, loc), 0, _combine)
            end = P * carry[None, :] + H
            if REVERSE:
                slot = k
            else:
                slot = k + 1
            tl.store(out_ptr + (pb * (NC + 1) + slot[:, None]) * ND + idx[None, :], end, mask=m)
            last = tl.minimum(NC - c0, CB) - 1
            carry = tl.sum(tl.where(rows[:, None] == last, end, 0.0), axis=0)
        return carry, S_total

    @triton.jit
    def _carry(local_ptr, dt_sum_ptr, A_ptr, out_ptr, NC, ND, D, sA_d, sA_n,  #
               REVERSE: tl.constexpr, CB: tl.constexpr, BLK: tl.constexpr):
        """Boundary values from zero (``_carry_pass``): h_in from h_local, or in REVERSE g_in from g_local;
        ``local``/``out`` are (batch, NC[+1], N, D) fp32, flattened over (N, D) = ND per chunk; one
        program per (BLK (n, d) pairs, sample)."""
        pb, idx, imask, dcol, A2 = _carry_lanes(A_ptr, ND, D, sA_d, sA_n, BLK)
        _carry_pass(local_ptr, dt_sum_ptr, out_ptr, pb, idx, imask, dcol, A2, carry=tl.zeros((BLK, ), tl.float32),
                    scale=None, NC=NC, ND=ND, D=D, REVERSE=REVERSE, CB=CB, BLK=BLK, HAS_LOCAL=True, HAS_SCALE=False)

    @triton.jit
    def _combine(a1, b1, a2, b2):
        return a1 * a2, a2 * b1 + b2

    @triton.jit
    def _bwd_chunk_adjoint(delta_ptr, delta_bias_ptr, A_ptr, BC_ptr, dy_ptr, g_local_ptr,  #
                           L, D, NC, Lp, T, sA_d, sA_n, sdelta_b, sdelta_d, sdelta_l, sdy_b, sdy_d, sdy_l,  #
                           N: tl.constexpr, NP: tl.constexpr, TT: tl.constexpr, BLOCK_D: tl.constexpr,
                           HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, NPOLY: tl.constexpr):
        """Backward phase 1: each chunk's adjoint walked in reverse from zero -> g_local = a_{t0} g_{t0}."""
        pc, pd, pb, d, dmask, n, tt = _program_block(D, BLOCK_D, NP, TT)
        A2 = _load_A2(A_ptr, d, dmask, sA_d, sA_n, n, N, NP, BLOCK_D)
        bias = _channel_vector(delta_bias_ptr, d, dmask, HAS_BIAS, BLOCK_D)
        delta_rows = _rows_of(delta_ptr, pb, d, sdelta_b, sdelta_d)
        dy_rows = _rows_of(dy_ptr, pb, d, sdy_b, sdy_d)
        c_base = BC_ptr + pb * Lp * 2 * NP + NP + n
        g_next = tl.zeros((NP, BLOCK_D), tl.float32)  # a_s g_s, handed to step s - 1
        t0 = pc * T
        for i in range(0, T // TT):
            tb = T - TT - i * TT
            t, m = _token_tile(t0, tb, tt, L, dmask)
            dt, z = _dt_tile(delta_rows + t[:, None] * sdelta_l, m, bias, SOFTPLUS)
            dy = tl.load(dy_rows + t[:, None] * sdy_l, mask=m, other=0.0).to(tl.float32)
            for jj in tl.static_range(TT):
                sel = tt[:, None] == (TT - 1 - jj)
                dt_j = _pick(dt, sel)
                dy_j = _pick(dy, sel)
                Cj = tl.load(c_base + (t0 + tb + TT - 1 - jj) * (2 * NP))
                g = Cj[:, None] * dy_j[None, :] + g_next
                g_next = _decay(dt_j[None, :] * A2, n, NPOLY) * g
        _store_rows(g_local_ptr + (pb * NC + pc) * N * D, g_next, d, dmask, D, n, N)

    @triton.jit
    def _bwd_chunk_forward(u_ptr, delta_ptr, delta_bias_ptr, A_ptr, BC_ptr, u_scale_ptr, dy_ptr, h_in_ptr,  #
                           AP_ptr, P_end_ptr, dtP_sum_ptr, dC_part_ptr,  #
                           B, L, D, NC, Lp, T, sA_d, sA_n, su_b, su_d, su_l, sdelta_b, sdelta_d, sdelta_l,  #
                           sdy_b, sdy_d, sdy_l,  #
                           N: tl.constexpr, NP: tl.constexpr, TT: tl.constexpr, BLOCK_D: tl.constexpr,
                           HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, RED: tl.constexpr,
                           HAS_USCALE: tl.constexpr):
        """Backward phase 3a: forward walk of each chunk from h_in[k] (input u * u_scale with HAS_USCALE).

        Writes the dC partials (sum over this block's channels of dy_t h_t), AP (sum_n A P_t per
        token), and per chunk P_end and dtP_sum (see the module docstring).
        """
        pc, pd, pb, d, dmask, n, tt = _program_block(D, BLOCK_D, NP, TT)
        A2 = _load_A2(A_ptr, d, dmask, sA_d, sA_n, n, N, NP, BLOCK_D)
        h = _load_rows(h_in_ptr + (pb * (NC + 1) + pc) * N * D, d, dmask, D, n, N, NP, BLOCK_D)
        bias = _channel_vector(delta_bias_ptr, d, dmask, HAS_BIAS, BLOCK_D)
        u_scale = _channel_vector(u_scale_ptr, d, dmask, HAS_USCALE, BLOCK_D)
        u_rows = _rows_of(u_ptr, pb, d, su_b, su_d)
        delta_rows = _rows_of(delta_ptr, pb, d, sdelta_b, sdelta_d)
        dy_rows = _rows_of(dy_ptr, pb, d, sdy_b, sdy_d)
        AP_rows = AP_ptr + (pb * D + d[None, :]) * Lp
        bc_base = BC_ptr + pb * Lp * 2 * NP + n
        dC_base = dC_part_ptr + (pd * B + pb) * Lp * NP + n
        P = tl.zeros((NP, BLOCK_D), tl.float32)
        dtP_sum = tl.zeros((NP, BLOCK_D), tl.float32)
        ones = tl.full((BLOCK_D, 16), 1.0, tl.float32)
        t0 = pc * T
        for tb in range(0, T, TT):
            t, m = _token_tile(t0, tb, tt, L, dmask)
            _, uu, dt, z, dtu = _input_tile(u_rows + t[:, None] * su_l, delta_rows + t[:, None] * sdelta_l, m, bias,
                                            u_scale, HAS_USCALE, SOFTPLUS)
            dy = tl.load(dy_rows + t[:, None] * sdy_l, mask=m, other=0.0).to(tl.float32)
            ap = tl.zeros((TT, BLOCK_D), tl.float32)
            for j in tl.static_range(TT):
                sel = tt[:, None] == j
                dt_j = _pick(dt, sel)
                dtu_j = _pick(dtu, sel)
                dy_j = _pick(dy, sel)
                bc = bc_base + (t0 + tb + j) * (2 * NP)
                Bj = tl.load(bc)
                Cj = tl.load(bc + NP)
                h = tl.exp2(dt_j[None, :] * A2) * h + dtu_j[None, :] * Bj[:, None]  # SFU exp2: issue-bound walk
                q = dy_j[None, :] * h
                tl.store(dC_base + (t0 + tb + j) * NP, _dsum(q, ones, RED))
                ap = tl.where(sel, ap + tl.sum(A2 * P, axis=0)[None, :], ap)
                dtP_sum += dt_j[None, :] * P
                P += Cj[:, None] * q
            tl.store(AP_rows + t[:, None], ap * _LN2, mask=m)
        chunk = (pb * NC + pc) * N * D
        _store_rows(P_end_ptr + chunk, P, d, dmask, D, n, N)
        _store_rows(dtP_sum_ptr + chunk, dtP_sum, d, dmask, D, n, N)

    @triton.jit
    def _reverse_tile(g_next, Z, dtZ_sum, dt, dtu, dy, ddt, A2, bc_base, dB_base, tok0, tt, ones,  #
                      NP: tl.constexpr, TT: tl.constexpr, BLOCK_D: tl.constexpr, RED: tl.constexpr,
                      HAS_DY: tl.constexpr, ACCUM: tl.constexpr):
        """The TT steps of the token tile at ``tok0``, last token first, of a reverse walk.

        Per token: the adjoint g_t (``c_t + g_next``, or ``g_next`` alone without HAS_DY: ``dy`` unread),
        the dB partial ``sum_d g_t x_t`` (added to the buffer with ACCUM), the suffix sums Z and
        ``sum dt Z``, and, into (TT, BLOCK_D) tiles, ``sum_n g_t B_t`` (returned as gB) and the Z term
        of d dt (subtracted from ``ddt``). Returns (g_next, Z, dtZ_sum, gB, ddt).
        """
        gB = tl.zeros((TT, BLOCK_D), tl.float32)
        for jj in tl.static_range(TT):
            sel = tt[:, None] == (TT - 1 - jj)
            dt_j = _pick(dt, sel)
            dtu_j = _pick(dtu, sel)
            bc = bc_base + (tok0 + TT - 1 - jj) * (2 * NP)
            Bj = tl.load(bc)
            if HAS_DY:
                Cj = tl.load(bc + NP)
                g = Cj[:, None] * _pick(dy, sel)[None, :] + g_next
            else:
                g = g_next
            g_next = tl.exp2(dt_j[None, :] * A2) * g  # SFU exp2: the walks are issue-bound
            q = g * dtu_j[None, :]
            dB_ptrs = dB_base + (tok0 + TT - 1 - jj) * NP
            if ACCUM:
                tl.store(dB_ptrs, tl.load(dB_ptrs) + _dsum(q, ones, RED))
            else:
                tl.store(dB_ptrs, _dsum(q, ones, RED))
            Z += q * Bj[:, None]
            dtZ_sum += dt_j[None, :] * Z
            gB = tl.where(sel, gB + tl.sum(g * Bj[:, None], axis=0)[None, :], gB)
            ddt = tl.where(sel, ddt - tl.sum(A2 * Z, axis=0)[None, :] * _LN2, ddt)
        return g_next, Z, dtZ_sum, gB, ddt

    @triton.jit
    def _bwd_chunk_reverse(u_ptr, delta_ptr, delta_bias_ptr, A_ptr, BC_ptr, D_skip_ptr, u_scale_ptr, dy_ptr,  #
                           h_in_ptr, g_in_ptr, AP_ptr, P_end_ptr, dtP_sum_ptr, dt_sum_ptr,  #
                           du_ptr, ddelta_ptr, dB_part_ptr, dA_part_ptr, dD_part_ptr, dbias_part_ptr,
                           dscale_part_ptr,  #
                           B, L, D, NC, Lp, T, sA_d, sA_n, su_b, su_d, su_l, sdelta_b, sdelta_d, sdelta_l,  #
                           sdy_b, sdy_d, sdy_l, sdu_b, sdu_d, sdu_l, sddelta_b, sddelta_d, sddelta_l,  #
                           N: tl.constexpr, NP: tl.constexpr, TT: tl.constexpr, BLOCK_D: tl.constexpr,
                           HAS_BIAS: tl.constexpr, HAS_D: tl.constexpr, SOFTPLUS: tl.constexpr, RED: tl.constexpr,
                           HAS_USCALE: tl.constexpr):
        """Backward phase 3b: reverse walk of each chunk from g_in[k + 1], given dy: every gradient.

        du, d delta per token; per chunk the dA, dD and d delta_bias partials (and with HAS_USCALE,
        where the input was u * u_scale, du is for u and ``sum_t u du'`` goes to the d u_scale
        partials); per channel block the dB partials. Uses the forward walk's AP, P_end, dtP_sum.
        """
        pc, pd, pb, d, dmask, n, tt = _program_block(D, BLOCK_D, NP, TT)
        A2 = _load_A2(A_ptr, d, dmask, sA_d, sA_n, n, N, NP, BLOCK_D)
        chunk = (pb * NC + pc) * N * D
        g_next, K = _chunk_end(g_in_ptr, h_in_ptr, pb, pc, NC, d, dmask, D, n, N, NP, BLOCK_D)
        K += _load_rows(P_end_ptr + chunk, d, dmask, D, n, N, NP, BLOCK_D)
        AK = tl.sum(A2 * K, axis=0) * _LN2  # sum_n A K, added to every d dt of the chunk
        bias = _channel_vector(delta_bias_ptr, d, dmask, HAS_BIAS, BLOCK_D)
        D_skip = _channel_vector(D_skip_ptr, d, dmask, HAS_D, BLOCK_D)
        u_scale = _channel_vector(u_scale_ptr, d, dmask, HAS_USCALE, BLOCK_D)
        u_rows = _rows_of(u_ptr, pb, d, su_b, su_d)
        delta_rows = _rows_of(delta_ptr, pb, d, sdelta_b, sdelta_d)
        dy_rows = _rows_of(dy_ptr, pb, d, sdy_b, sdy_d)
        du_rows = _rows_of(du_ptr, pb, d, sdu_b, sdu_d)
        ddelta_rows = _rows_of(ddelta_ptr, pb, d, sddelta_b, sddelta_d)
        AP_rows = AP_ptr + (pb * D + d[None, :]) * Lp
        bc_base = BC_ptr + pb * Lp * 2 * NP + n
        dB_base = dB_part_ptr + (pd * B + pb) * Lp * NP + n
        Z = tl.zeros((NP, BLOCK_D), tl.float32)
        dtZ_sum = tl.zeros((NP, BLOCK_D), tl.float32)
        dD_acc = tl.zeros((BLOCK_D, ), tl.float32)
        dbias_acc = tl.zeros((BLOCK_D, ), tl.float32)
        dscale_acc = tl.zeros((BLOCK_D, ), tl.float32)
        ones = tl.full((BLOCK_D, 16), 1.0, tl.float32)
        t0 = pc * T
        for i in range(0, T // TT):
            tb = T - TT - i * TT
            t, m = _token_tile(t0, tb, tt, L, dmask)
            u_in, uu, dt, z, dtu = _input_tile(u_rows + t[:, None] * su_l, delta_rows + t[:, None] * sdelta_l, m,
                                               bias, u_scale, HAS_USCALE, SOFTPLUS)
            dy = tl.load(dy_rows + t[:, None] * sdy_l, mask=m, other=0.0).to(tl.float32)
            ddt = AK[None, :] - tl.load(AP_rows + t[:, None], mask=m, other=0.0)
            g_next, Z, dtZ_sum, gB, ddt = _reverse_tile(g_next, Z, dtZ_sum, dt, dtu, dy, ddt, A2, bc_base, dB_base,
                                                        t0 + tb, tt, ones, NP, TT, BLOCK_D, RED, HAS_DY=True,
                                                        ACCUM=False)
            ddt += uu * gB
            ddelta = _ddelta_tile(ddt, z, m, SOFTPLUS)
            du = dt * gB
            du += D_skip[None, :] * dy
            dD_acc += tl.sum(dy * uu, axis=0)
            if HAS_USCALE:
                dscale_acc += tl.sum(u_in * du, axis=0)
                du = du * u_scale[None, :]
            dbias_acc += tl.sum(ddelta, axis=0)
            _store_tile(du_rows + t[:, None] * sdu_l, du, m, False)
            _store_tile(ddelta_rows + t[:, None] * sddelta_l, ddelta, m, False)
        S = tl.load(dt_sum_ptr + (pb * NC + pc) * D + d, mask=dmask, other=0.0)
        dA = K * S[None, :] - dtZ_sum
        dA -= _load_rows(dtP_sum_ptr + chunk, d, dmask, D, n, N, NP, BLOCK_D)
        _store_rows(dA_part_ptr + chunk, dA, d, dmask, D, n, N)
        tl.store(dD_part_ptr + (pb * NC + pc) * D + d, dD_acc, mask=dmask)
        tl.store(dbias_part_ptr + (pb * NC + pc) * D + d, dbias_acc, mask=dmask)
        if HAS_USCALE:
            tl.store(dscale_part_ptr + (pb * NC + pc) * D + d, dscale_acc, mask=dmask)

    @triton.jit
    def _bwd_chunk_final_state(u_ptr, delta_ptr, delta_bias_ptr, A_ptr, BC_ptr, ddt_const_ptr, h_in_ptr, g_in_ptr,
                               dt_sum_ptr, du_ptr, ddelta_ptr, dB_part_ptr, dA_part_ptr, dbias_part_ptr,  #
                               B, L, D, NC, Lp, T, sA_d, sA_n, su_b, su_d, su_l, sdelta_b, sdelta_d, sdelta_l,  #
                               sdu_b, sdu_d, sdu_l, sddelta_b, sddelta_d, sddelta_l,  #
                               N: tl.constexpr, NP: tl.constexpr, TT: tl.constexpr, BLOCK_D: tl.constexpr,
                               HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, RED: tl.constexpr):
        """Reverse walk from g_in[k + 1] with no output gradient: only the final state's adjoint acts.

        Cycle-scan's copy (:mod:`.triton_cycle_scan`): with dy = 0, P = AP = 0 and no D term, so
        neither the local adjoint nor the forward walk is needed; ``ddt_const[b, d]`` is added to
        every d dt. du, d delta and the dB, dA, d delta_bias partials are ADDED to what the buffers
        hold (the weighted scan's walk wrote them first).
        """
        pc, pd, pb, d, dmask, n, tt = _program_block(D, BLOCK_D, NP, TT)
        A2 = _load_A2(A_ptr, d, dmask, sA_d, sA_n, n, N, NP, BLOCK_D)
        chunk = (pb * NC + pc) * N * D
        g_next, K = _chunk_end(g_in_ptr, h_in_ptr, pb, pc, NC, d, dmask, D, n, N, NP, BLOCK_D)
        AK = tl.sum(A2 * K, axis=0) * _LN2
        AK += tl.load(ddt_const_ptr + pb * D + d, mask=dmask, other=0.0)
        bias = _channel_vector(delta_bias_ptr, d, dmask, HAS_BIAS, BLOCK_D)
        u_rows = _rows_of(u_ptr, pb, d, su_b, su_d)
        delta_rows = _rows_of(delta_ptr, pb, d, sdelta_b, sdelta_d)
        du_rows = _rows_of(du_ptr, pb, d, sdu_b, sdu_d)
        ddelta_rows = _rows_of(ddelta_ptr, pb, d, sddelta_b, sddelta_d)
        bc_base = BC_ptr + pb * Lp * 2 * NP + n
        dB_base = dB_part_ptr + (pd * B + pb) * Lp * NP + n
        Z = tl.zeros((NP, BLOCK_D), tl.float32)
        dtZ_sum = tl.zeros((NP, BLOCK_D), tl.float32)
        dbias_acc = tl.zeros((BLOCK_D, ), tl.float32)
        ones = tl.full((BLOCK_D, 16), 1.0, tl.float32)
        t0 = pc * T
        for i in range(0, T // TT):
            tb = T - TT - i * TT
            t, m = _token_tile(t0, tb, tt, L, dmask)
            _, uu, dt, z, dtu = _input_tile(u_rows + t[:, None] * su_l, delta_rows + t[:, None] * sdelta_l, m, bias,
                                            None, False, SOFTPLUS)
            ddt = AK[None, :] + tl.zeros((TT, BLOCK_D), tl.float32)
            g_next, Z, dtZ_sum, gB, ddt = _reverse_tile(g_next, Z, dtZ_sum, dt, dtu, None, ddt, A2, bc_base, dB_base,
                                                        t0 + tb, tt, ones, NP, TT, BLOCK_D, RED, HAS_DY=False,
                                                        ACCUM=True)
            ddt += uu * gB
            ddelta = _ddelta_tile(ddt, z, m, SOFTPLUS)
            dbias_acc += tl.sum(ddelta, axis=0)
            _store_tile(du_rows + t[:, None] * sdu_l, dt * gB, m, True)
            _store_tile(ddelta_rows + t[:, None] * sddelta_l, ddelta, m, True)
        S = tl.load(dt_sum_ptr + (pb * NC + pc) * D + d, mask=dmask, other=0.0)
        dA = K * S[None, :] - dtZ_sum
        dA += _load_rows(dA_part_ptr + chunk, d, dmask, D, n, N, NP, BLOCK_D)
        _store_rows(dA_part_ptr + chunk, dA, d, dmask, D, n, N)
        dbias_acc += tl.load(dbias_part_ptr + (pb * NC + pc) * D + d, mask=dmask, other=0.0)
        tl.store(dbias_part_ptr + (pb * NC + pc) * D + d, dbias_acc, mask=dmask)


# ----------------------------------------------------------------------------- host side
def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


def _strides(name: str, t: Tensor) -> dict:
    """The kernels' ``s<name>_b``, ``s<name>_d``, ``s<name>_l`` arguments: strides of a (batch, D, L) tensor."""
    return {f's{name}_b': t.stride(0), f's{name}_d': t.stride(1), f's{name}_l': t.stride(2)}


class _Prepared(NamedTuple):
    A: Tensor  # (D, N), any strides and float dtype: the kernels read it and fold in log2(e)
    BC: Tensor  # (batch, Lp, 2, NP) fp32: B and C per token, zero-padded
    delta_bias: Optional[Tensor]  # (D,) fp32
    D_skip: Optional[Tensor]  # (D,) fp32
    softplus: bool
    NC: int
    Lp: int
    NP: int


def _token_major_BC(B: Tensor, C: Tensor, Lp: int, NP: int) -> Tensor:
    """(batch, Lp, 2, NP) fp32: B_t and C_t side by side per token, zero-padded to Lp tokens and NP states."""
    batch, d_state, length = B.shape
    BC = torch.empty(batch, Lp, 2, NP, device=B.device, dtype=torch.float32)
    if Lp == length and NP == d_state:  # one launch: every launch costs host time
        return torch.stack((B.detach().transpose(1, 2), C.detach().transpose(1, 2)), dim=2, out=BC)
    BC[:, :length, 0, :d_state] = B.detach().transpose(1, 2)
    BC[:, :length, 1, :d_state] = C.detach().transpose(1, 2)
    if Lp > length:
        BC[:, length:].zero_()
    if NP > d_state:
        BC[..., d_state:].zero_()
    return BC


def _prepare(u: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor], delta_bias: Optional[Tensor],
             delta_softplus: bool, cfg: ScanConfig, BC: Optional[Tensor] = None) -> _Prepared:
    """Host-side preparation: B and C token-major (``BC``, unless the forward's is passed back), no other launch."""
    NP = _next_pow2(A.shape[1])
    NC = max(1, math.ceil(u.shape[2] / cfg.chunk))
    Lp = NC * cfg.chunk
    if BC is None:
        BC = _token_major_BC(B, C, Lp, NP)
    bias = None if delta_bias is None else delta_bias.detach().float().contiguous()
    D_skip = None if D is None else D.detach().float().contiguous()
    return _Prepared(A.detach(), BC, bias, D_skip, bool(delta_softplus), NC, Lp, NP)


def _chunk_kw(delta: Tensor, prep: _Prepared, cfg: ScanConfig, backward: bool = False) -> dict:
    """Keyword arguments every chunk kernel takes: delta, delta_bias, A, BC, the sizes, the shared
    constexprs and launch options of one direction."""
    return dict(delta_ptr=delta, delta_bias_ptr=prep.delta_bias, A_ptr=prep.A, BC_ptr=prep.BC, L=delta.shape[2],
                D=delta.shape[1], NC=prep.NC, Lp=prep.Lp, T=cfg.chunk, sA_d=prep.A.stride(0), sA_n=prep.A.stride(1),
                **_strides('delta', delta), N=prep.A.shape[1], NP=prep.NP, TT=cfg.bwd_tile if backward else cfg.tile,
                BLOCK_D=cfg.bwd_block_d if backward else cfg.fwd_block_d, HAS_BIAS=prep.delta_bias is not None,
                SOFTPLUS=prep.softplus, num_warps=cfg.bwd_warps if backward else cfg.fwd_warps)


def _chunk_grid(u: Tensor, prep: _Prepared, block_d: int) -> tuple:
    return (prep.NC, triton.cdiv(u.shape[1], block_d), u.shape[0])


def _chunk_states(u: Tensor, delta: Tensor, prep: _Prepared, cfg: ScanConfig) -> Tuple[Tensor, Tensor]:
    """Phase 1: h_local (batch, NC, N, D), each chunk's final state from zero, and dt_sum (batch, NC, D)."""
    batch, channels, _ = u.shape
    f32 = dict(device=u.device, dtype=torch.float32)
    h_local = torch.empty(batch, prep.NC, prep.A.shape[1], channels, **f32)
    dt_sum = torch.empty(batch, prep.NC, channels, **f32)
    _fwd_chunk_state[_chunk_grid(u, prep, cfg.fwd_block_d)](u_ptr=u, h_local_ptr=h_local, dt_sum_ptr=dt_sum,
                                                            NPOLY=cfg.npoly, **_strides('u', u),
                                                            **_chunk_kw(delta, prep, cfg))
    return h_local, dt_sum


def _chunk_outputs(u: Tensor, delta: Tensor, prep: _Prepared, h_in: Tensor, cfg: ScanConfig,
                   u_scale: Optional[Tensor] = None) -> Tensor:
    """Phase 3: y (batch, D, L) from the boundary states h_in; the input is u * u_scale when given."""
    y = torch.empty(u.shape, device=u.device, dtype=u.dtype)
    _fwd_chunk_out[_chunk_grid(u, prep, cfg.fwd_block_d)](
        u_ptr=u, D_skip_ptr=prep.D_skip, u_scale_ptr=u_scale, h_in_ptr=h_in, y_ptr=y, HAS_D=prep.D_skip is not None,
        HAS_USCALE=u_scale is not None, NPOLY=cfg.npoly_out, **_strides('u', u), **_strides('y', y),
        **_chunk_kw(delta, prep, cfg))
    return y


def _forward(u: Tensor, delta: Tensor, prep: _Prepared, cfg: ScanConfig) -> Tuple[Tensor, Tensor, Tensor]:
    """y, h_in (batch, NC + 1, N, D) and dt_sum (batch, NC, D)."""
    h_local, dt_sum = _chunk_states(u, delta, prep, cfg)
    h_in = _carry_states(h_local, dt_sum, prep.A, reverse=False)
    return _chunk_outputs(u, delta, prep, h_in, cfg), h_in, dt_sum


def _carry_grid(local: Tensor) -> tuple:
    return (triton.cdiv(local.shape[2] * local.shape[3], CARRY_BLOCK), local.shape[0])


def _carry_states(local: Tensor, dt_sum: Tensor, A: Tensor, reverse: bool) -> Tensor:
    """Boundary values (batch, NC + 1, N, D) from the chunks' local ones, from zero: h_in from h_local,
    or (reverse) g_in from g_local (see ``_carry``)."""
    batch, NC, d_state, channels = local.shape
    out = torch.empty(batch, NC + 1, d_state, channels, device=local.device, dtype=torch.float32)
    _carry[_carry_grid(local)](local_ptr=local, dt_sum_ptr=dt_sum, A_ptr=A, out_ptr=out, NC=NC, ND=d_state * channels,
                               D=channels, sA_d=A.stride(0), sA_n=A.stride(1), REVERSE=reverse, CB=CARRY_CHUNKS,
                               BLK=CARRY_BLOCK, num_warps=CARRY_WARPS)
    return out


class _ForwardWalk(NamedTuple):
    """What the backward's forward walk hands to the reverse walk (see the module docstring)."""
    AP: Tensor  # (batch, D, Lp)
    P_end: Tensor  # (batch, NC, N, D)
    dtP_sum: Tensor  # (batch, NC, N, D)
    dC_part: Tensor  # (channel blocks, batch, Lp, NP)


class _Partials(NamedTuple):
    """Gradient buffers of the backward kernels, before the reductions (:func:`_reduce`)."""
    du: Tensor  # (batch, D, L) in u's dtype, or fp32 when a second walk accumulates into it
    ddelta: Tensor  # (batch, D, L) likewise
    dA_part: Tensor  # (batch, NC, N, D) per chunk
    dB_part: Tensor  # (channel blocks, batch, Lp, NP) per channel block
    dC_part: Tensor  # same
    dD_part: Tensor  # (batch, NC, D) per chunk
    dbias_part: Tensor  # (batch, NC, D) per chunk
    dscale_part: Optional[Tensor]  # (batch, NC, D) per chunk: sum_t u du' (with u_scale)
    g_in: Tensor  # (batch, NC + 1, N, D) boundary adjoints; g_in[:, 0] is the initial state's gradient


def _forward_walk(dy: Tensor, u: Tensor, delta: Tensor, prep: _Prepared, h_in: Tensor, cfg: ScanConfig,
                  u_scale: Optional[Tensor]) -> _ForwardWalk:
    """Backward phase 3a (``_bwd_chunk_forward``)."""
    batch, channels, _ = u.shape
    f32 = dict(device=u.device, dtype=torch.float32)
    states = torch.empty(2, batch, prep.NC, prep.A.shape[1], channels, **f32)
    grid = _chunk_grid(u, prep, cfg.bwd_block_d)
    walk = _ForwardWalk(torch.empty(batch, channels, prep.Lp, **f32), states[0], states[1],
                        torch.empty(grid[1], batch, prep.Lp, prep.NP, **f32))
    _bwd_chunk_forward[grid](u_ptr=u, u_scale_ptr=u_scale, dy_ptr=dy, h_in_ptr=h_in, AP_ptr=walk.AP,
                             P_end_ptr=walk.P_end, dtP_sum_ptr=walk.dtP_sum, dC_part_ptr=walk.dC_part, B=batch,
                             RED=cfg.red, HAS_USCALE=u_scale is not None, **_strides('u', u), **_strides('dy', dy),
                             **_chunk_kw(delta, prep, cfg, backward=True))
    return walk


def _backward(dy: Tensor, u: Tensor, delta: Tensor, prep: _Prepared, h_in: Tensor, dt_sum: Tensor, cfg: ScanConfig,
              u_scale: Optional[Tensor] = None, fp32_grads: bool = False) -> _Partials:
    """Gradient buffers of a scan from the boundary states ``h_in`` (``h_in[:, 0]``: its initial
    state), given ``dy``; the input was ``u * u_scale`` when that is given. ``fp32_grads``: du and
    d delta in fp32 (another walk will add to them; rounding once, at the end, keeps bf16 accurate)."""
    batch, channels, _ = u.shape
    f32 = dict(device=u.device, dtype=torch.float32)
    grid = _chunk_grid(u, prep, cfg.bwd_block_d)
    kw = _chunk_kw(delta, prep, cfg, backward=True)
    g_local = torch.empty(batch, prep.NC, prep.A.shape[1], channels, **f32)
    _bwd_chunk_adjoint[grid](dy_ptr=dy, g_local_ptr=g_local, NPOLY=cfg.npoly, **_strides('dy', dy), **kw)
    g_in = _carry_states(g_local, dt_sum, prep.A, reverse=True)
    walk = _forward_walk(dy, u, delta, prep, h_in, cfg, u_scale)
    per_chunk = torch.empty(3, batch, prep.NC, channels, **f32)
    grad_dtype = (torch.float32, torch.float32) if fp32_grads else (u.dtype, delta.dtype)
    out = _Partials(du=torch.empty(u.shape, device=u.device, dtype=grad_dtype[0]),
                    ddelta=torch.empty(delta.shape, device=u.device, dtype=grad_dtype[1]),
                    dA_part=torch.empty_like(g_local), dB_part=torch.empty_like(walk.dC_part), dC_part=walk.dC_part,
                    dD_part=per_chunk[0], dbias_part=per_chunk[1],
                    dscale_part=None if u_scale is None else per_chunk[2], g_in=g_in)
    _bwd_chunk_reverse[grid](u_ptr=u, D_skip_ptr=prep.D_skip, u_scale_ptr=u_scale, dy_ptr=dy, h_in_ptr=h_in,
                             g_in_ptr=g_in, AP_ptr=walk.AP, P_end_ptr=walk.P_end, dtP_sum_ptr=walk.dtP_sum,
                             dt_sum_ptr=dt_sum, du_ptr=out.du, ddelta_ptr=out.ddelta, dB_part_ptr=out.dB_part,
                             dA_part_ptr=out.dA_part, dD_part_ptr=out.dD_part, dbias_part_ptr=out.dbias_part,
                             dscale_part_ptr=out.dscale_part, B=batch, HAS_D=prep.D_skip is not None, RED=cfg.red,
                             HAS_USCALE=u_scale is not None, **_strides('u', u), **_strides('dy', dy),
                             **_strides('du', out.du), **_strides('ddelta', out.ddelta), **kw)
    return out


def _final_state_walk(out: _Partials, u: Tensor, delta: Tensor, prep: _Prepared, h_in: Tensor, g_in: Tensor,
                      dt_sum: Tensor, ddt_const: Tensor, cfg: ScanConfig) -> None:
    """``_bwd_chunk_final_state``: the gradients of a scan whose only gradient is its final state's
    (``g_in[:, -1]``, carried back into ``g_in``), with ``ddt_const`` (batch, D) added to every
    d dt, added into ``out``'s du, d delta, dB, dA and d delta_bias buffers."""
    _bwd_chunk_final_state[_chunk_grid(u, prep, cfg.bwd_block_d)](
        u_ptr=u, ddt_const_ptr=ddt_const, h_in_ptr=h_in, g_in_ptr=g_in, dt_sum_ptr=dt_sum, du_ptr=out.du,
        ddelta_ptr=out.ddelta, dB_part_ptr=out.dB_part, dA_part_ptr=out.dA_part, dbias_part_ptr=out.dbias_part,
        B=u.shape[0], RED=cfg.red, **_strides('u', u), **_strides('du', out.du), **_strides('ddelta', out.ddelta),
        **_chunk_kw(delta, prep, cfg, backward=True))


def _reduce(p: _Partials, length: int, d_state: int) -> Tuple[Tensor, ...]:
    """(dA (D, N), dB, dC (batch, N, L), dD (D,), dbias (D,)) fp32 from the partial sums."""
    dA = p.dA_part.sum((0, 1)).t()
    dB = p.dB_part.sum(0)[:, :length, :d_state].transpose(1, 2)
    dC = p.dC_part.sum(0)[:, :length, :d_state].transpose(1, 2)
    return dA, dB, dC, p.dD_part.sum((0, 1)), p.dbias_part.sum((0, 1))


class _TritonScanFunction(torch.autograd.Function):
    """Forward saves the inputs, the boundary states h_in and the chunk sums of dt (small)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus, cfg):
        prep = _prepare(u, A, B, C, D, delta_bias, delta_softplus, cfg)
        y, h_in, dt_sum = _forward(u, delta, prep, cfg)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, h_in, dt_sum, prep.BC)
        ctx.config = (cfg, delta_softplus)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        u, delta, A, B, C, D, delta_bias, h_in, dt_sum, BC = ctx.saved_tensors
        cfg, delta_softplus = ctx.config
        prep = _prepare(u, A, B, C, D, delta_bias, delta_softplus, cfg, BC)
        p = _backward(dy, u, delta, prep, h_in, dt_sum, cfg)
        dA, dB, dC, dD, dbias = _reduce(p, u.shape[2], A.shape[1])
        needs = ctx.needs_input_grad
        return (p.du if needs[0] else None, p.ddelta if needs[1] else None, dA.to(A.dtype) if needs[2] else None,
                dB.to(B.dtype) if needs[3] else None, dC.to(C.dtype) if needs[4] else None,
                dD.to(D.dtype) if needs[5] else None, dbias.to(delta_bias.dtype) if needs[6] else None, None, None)


def triton_selective_scan(u: Tensor,
                          delta: Tensor,
                          A: Tensor,
                          B: Tensor,
                          C: Tensor,
                          D: Optional[Tensor] = None,
                          delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = True,
                          tuning: Optional[ScanTuning] = None) -> Tensor:
    """Selective scan with the Triton kernels of this module (forward and backward).

    Args: as :func:`mmhrsam.ops.selective_scan.selective_scan`, plus
        tuning (ScanTuning, optional): launch tuning (benchmarks, tests); None: the defaults.

    Returns:
        Tensor: (batch, D, L) in ``u``'s dtype.

    Raises:
        BackendUnavailableError: triton is missing, or the tensors are not on CUDA (CPU
            tensors run only under TRITON_INTERPRET=1).
        TypeError, ValueError: ``tuning`` is not a ScanTuning, or asks for what cannot run.
    """
    tuning = _check_tuning(tuning)
    reason = triton_unavailable(u)
    if reason is not None:
        raise BackendUnavailableError(reason)
    cfg = default_config(u, A.shape[1], tuning)
    with torch.autocast(u.device.type, enabled=False):  # dtypes as given; fp32 state inside
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                           for t in (u, delta, A, B, C, D, delta_bias)):
            return _apply_eagerly(_TritonScanFunction, u, delta, A, B, C, D, delta_bias, delta_softplus, cfg)
        prep = _prepare(u, A, B, C, D, delta_bias, delta_softplus, cfg)
        return _forward(u, delta, prep, cfg)[0]


@torch.compiler.disable
def _apply_eagerly(function: type, *args):
    """``function.apply(*args)`` outside any ``torch.compile`` graph (a graph break).

    A compiled training step (forward and backward through AOTAutograd) with these Triton kernels
    inside the graph made an illegal memory access on an H200 (torch 2.11; the same model without
    Cycle-scan compiled and trained, docs/benchmarks.md); run eagerly, the autograd function is
    what the eager training path runs. Inference (no gradients) stays inside compiled graphs.
    """
    return function.apply(*args)


def _check_tuning(tuning: Optional[ScanTuning]) -> ScanTuning:
    if tuning is None:
        return ScanTuning()
    if not isinstance(tuning, ScanTuning):
        raise TypeError(f'tuning must be a ScanTuning or None, got {type(tuning).__name__}')
    return tuning


__all__ = ['triton_selective_scan', 'triton_unavailable', 'default_config', 'ScanTuning', 'ScanConfig', 'INTERPRETED']
