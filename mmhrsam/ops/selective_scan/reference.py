"""Sequential float64 selective scan: the definition the other backends are tested against."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def reference_selective_scan(u: Tensor,
                             delta: Tensor,
                             A: Tensor,
                             B: Tensor,
                             C: Tensor,
                             D: Optional[Tensor] = None,
                             delta_bias: Optional[Tensor] = None,
                             delta_softplus: bool = True) -> Tensor:
    """Selective scan as an explicit loop over tokens, in float64 (slow; tests only).

    With ``dt = softplus(delta + delta_bias)``::

        h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t      h: (batch, D, N), h_0 = 0
        y_t = <C_t, h_t> + D * u_t

    Args:
        u (Tensor): (batch, D, L) input.
        delta (Tensor): (batch, D, L) time steps before the bias and softplus.
        A (Tensor): (D, N) real state matrix (diagonal per channel), normally negative.
        B (Tensor): (batch, N, L) input projection, one group shared by all channels.
        C (Tensor): (batch, N, L) output projection, one group shared by all channels.
        D (Tensor, optional): (D,) skip weight.
        delta_bias (Tensor, optional): (D,) added to ``delta``.
        delta_softplus (bool): apply softplus to ``delta + delta_bias``.

    Returns:
        Tensor: (batch, D, L) in ``u``'s dtype; differentiable.
    """
    with torch.autocast(u.device.type, enabled=False):
        dt = delta.double()
        if delta_bias is not None:
            dt = dt + delta_bias.double()[:, None]
        if delta_softplus:
            dt = F.softplus(dt)
        u64, A64, B64, C64 = u.double(), A.double(), B.double(), C.double()
        h = u64.new_zeros(u.shape[0], u.shape[1], A.shape[1])  # (batch, D, N)
        ys = []
        for t in range(u.shape[-1]):
            decay = torch.exp(dt[:, :, t, None] * A64)  # (batch, D, N)
            h = decay * h + (dt[:, :, t] * u64[:, :, t])[:, :, None] * B64[:, None, :, t]
            ys.append((h * C64[:, None, :, t]).sum(-1))  # (batch, D)
        y = torch.stack(ys, dim=-1)
        if D is not None:
            y = y + D.double()[:, None] * u64
    return y.to(u.dtype)
