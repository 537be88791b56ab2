"""The encoders the benchmark times: configs, the paper row each stands for, aliases, tiny versions."""
from __future__ import annotations

import math
from typing import Callable, Dict, NamedTuple, Optional

from benchmark_common import resolve_label

PATCH = 16


class Encoder(NamedTuple):
    """An encoder to benchmark.

    Attributes:
        cfg: input size -> model config.
        paper: the row of the paper it stands for.
        dense: '' (local attention only), 'flash' (dense attention through SDPA, memory
            linear in tokens) or 'materialized' (explicit N x N scores).
        heads: attention heads of the dense layers (for the score-memory estimate).
        per_size: built anew for every input size (SAM: fixed-size position embedding).
        host_factories: its forward creates tensors without a device (segment_anything's
            relative-position indices, ``torch.arange`` on the CPU) and indexes GPU tables
            with them: a host-to-device copy, which a CUDA graph cannot capture. Graph mode
            runs its forward with the GPU as the default device (``measure.on_default_device``).
    """
    cfg: Callable[[int], dict]
    paper: str
    dense: str = ''
    heads: int = 12
    per_size: bool = False
    host_factories: bool = False


def _hrsam(attn: Optional[str] = None, scan: bool = True, plus: bool = False) -> Callable[[int], dict]:
    cfg = dict(type='HRSAMPlusPlus' if plus else 'HRSAM')
    if attn is not None:
        cfg['attn_cfg'] = dict(type=attn)
    if not scan:
        cfg['cycle_scan_cfg'] = None
    return lambda size: dict(cfg)


#: Table 3 order, then the Fig. 5 baseline and SAM's encoders.
ENCODERS: Dict[str, Encoder] = {
    'Global': Encoder(_hrsam('GlobalAttention', scan=False), 'Table 3: Global', dense='flash'),
    'FlashSwin': Encoder(_hrsam('FlashSwinAttention', scan=False), 'Table 3: Flash Swin'),
    'KVPadSwin': Encoder(_hrsam('KVPadSwinAttention', scan=False), 'Table 3: + KV padding'),
    'HRSAM': Encoder(_hrsam(), 'Table 3: + Cycle-scan (HRSAM)'),
    'HRSAM++': Encoder(_hrsam(plus=True), 'Table 3: + multi-scale (HRSAM++)'),
    'PlainSwin': Encoder(_hrsam('PlainSwinAttention', scan=False), 'Fig. 5: Plain Swin'),
    'SAM-ViT-B': Encoder(lambda s: dict(type='SAMViT', arch='vit-b', img_size=s), 'SAM ViT-B',
                         dense='materialized', heads=12, per_size=True, host_factories=True),
    'SAM-ViT-H': Encoder(lambda s: dict(type='SAMViT', arch='vit-h', img_size=s), 'SAM ViT-H',
                         dense='materialized', heads=16, per_size=True, host_factories=True),
    # Dilated groups hold tokens / rate² tokens each and run through SDPA; SAM's windows are local
    # (segment_anything's blocks, hence its relative-position indices).
    'SAM-Lightening': Encoder(lambda s: dict(type='SAMLightening', arch='vit-s'), 'SAM-Lightening ViT-S',
                              host_factories=True),
}
ALIASES = {'hrsamplusplus': 'HRSAM++', 'hrsampp': 'HRSAM++', 'kvpad': 'KVPadSwin', 'flash': 'FlashSwin',
           'plain': 'PlainSwin', 'sam-b': 'SAM-ViT-B', 'sam-h': 'SAM-ViT-H', 'samvit-b': 'SAM-ViT-B',
           'samvit-h': 'SAM-ViT-H', 'sam_vit_b': 'SAM-ViT-B', 'sam_vit_h': 'SAM-ViT-H',
           'samlightening': 'SAM-Lightening', 'sam-light': 'SAM-Lightening', 'lightening': 'SAM-Lightening'}
CPU_MODELS = ('HRSAM', 'SAM-ViT-B')
#: Default run order on CUDA: the rows the target checks need first, so that a run cut short
#: by --time-limit-s still checks them (tables list models in :data:`ENCODERS` order).
CUDA_MODELS = ('HRSAM', 'HRSAM++', 'FlashSwin', 'SAM-ViT-H', 'SAM-Lightening', 'KVPadSwin', 'Global', 'PlainSwin',
               'SAM-ViT-B')


def resolve_model_name(name: str) -> str:
    """The :data:`ENCODERS` label of ``name`` (case-insensitive, or one of :data:`ALIASES`)."""
    return resolve_label(name, ENCODERS, ALIASES, 'encoder')


def num_tokens(size: int) -> int:
    """Patch tokens of a ``size`` x ``size`` image."""
    return math.ceil(size / PATCH) ** 2


def tiny_cfg(cfg: dict) -> dict:
    """A few-channel, few-block version of ``cfg`` (same code paths), for tests."""
    cfg = dict(cfg)
    if cfg['type'] == 'SAMViT':
        cfg['arch'] = dict(embed_dim=64, depth=4, num_heads=2, global_attn_indexes=(1, 3))
        return cfg
    if cfg['type'] == 'SAMLightening':
        cfg['arch'] = dict(embed_dim=64, depth=4, num_heads=2, attn_pattern=('window', 2, 'window', 2))
        return cfg
    cfg.update(embed_dim=64, depth=4, num_heads=2, num_stages=2, window_size=4, out_channels=32)
    if cfg.get('cycle_scan_cfg', 'default') is not None:
        cfg['cycle_scan_cfg'] = dict(type='CycleScan', d_state=4)
    if cfg['type'] == 'HRSAMPlusPlus':
        cfg.update(anchor_size=64, ms_cycle_scan_cfg=dict(type='MultiScaleCycleScan', d_state=4))
    return cfg
