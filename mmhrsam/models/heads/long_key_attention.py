"""segment_anything's decoder attention with the few-queries-many-keys product split over keys.

In SAM's two-way transformer the prompt tokens (N clicks + 6) attend to every image token
(``cross_attn_token_to_image``, ``final_attn_token_to_image``). At a 128² embedding the
product ``attn @ v`` is (8 heads, ~11 queries, 16384 keys) @ (8, 16384, 16): cuBLAS runs it
as one batched GEMM whose only parallelism is the 8 heads, each walking all 16384 keys, and
it takes 0.29 ms on an H200 (0.86 ms of a 2.5 ms click for the three such products). Split
into 256-key chunks the same product is 8 x 64 small GEMMs and a sum over the chunks.
Only the order of the fp32 additions changes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from segment_anything.modeling.transformer import Attention
from torch import Tensor, nn

#: Keys per chunk of :func:`split_key_matmul`.
KEY_CHUNK = 256


def split_key_matmul(attn: Tensor, v: Tensor, chunk: int = KEY_CHUNK) -> Tensor:
    """``attn @ v`` computed as a sum over key chunks when there are few queries and many keys.

    Args:
        attn (Tensor): (B, heads, Nq, Nk) attention weights.
        v (Tensor): (B, heads, Nk, c) values.
        chunk (int): keys per chunk.

    Returns:
        Tensor: (B, heads, Nq, c). Plain ``attn @ v`` unless the inputs are fp32, Nq <= 64
        and Nk > 4096: up to SAM's own 64² grid the result stays upstream's bit for bit, and
        16-bit products stay one GEMM so their fp32 accumulation is not rounded per chunk.
    """
    nq, nk = attn.shape[-2:]
    if attn.dtype != torch.float32 or v.dtype != torch.float32 or nq > 64 or nk <= 4096:
        return attn @ v
    pad = -nk % chunk  # zero weights on zero values add nothing
    if pad:
        attn, v = F.pad(attn, (0, pad)), F.pad(v, (0, 0, 0, pad))
    chunks = (nk + pad) // chunk
    parts = attn.unflatten(-1, (chunks, chunk)).transpose(-3, -2) @ v.unflatten(-2, (chunks, chunk))
    return parts.sum(-3)  # (B, heads, chunks, Nq, c) -> (B, heads, Nq, c)


class LongKeyAttention(Attention):
    """:class:`segment_anything.modeling.transformer.Attention` (same parameters, same
    result up to fp32 rounding) with ``attn @ v`` by :func:`split_key_matmul`."""

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        q = self._separate_heads(self.q_proj(q), self.num_heads)  # (B, heads, Nq, c)
        k = self._separate_heads(self.k_proj(k), self.num_heads)  # (B, heads, Nk, c)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        attn = (q @ k.permute(0, 1, 3, 2)) / math.sqrt(q.shape[-1])  # as upstream: scale after
        attn = torch.softmax(attn, dim=-1)
        return self.out_proj(self._recombine_heads(split_key_matmul(attn, v)))


def use_long_key_attention(module: nn.Module) -> nn.Module:
    """Replace every upstream ``Attention`` inside ``module`` by a :class:`LongKeyAttention`
    holding the same parameters (names and values unchanged), in place; returns ``module``."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is Attention:
                replacement = LongKeyAttention.__new__(LongKeyAttention)
                replacement.__dict__ = child.__dict__  # the same submodules, buffers and flags
                setattr(parent, name, replacement)
    return module
