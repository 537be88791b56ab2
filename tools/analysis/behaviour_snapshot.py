"""Save, or check against a saved file, the exact outputs of the encoders and token mixers.

Used to prove that a refactoring changes no numbers: run ``--save`` before it, ``--check``
after it; every output and gradient must be bit-identical (``torch.equal``, fp32, CPU).
Weights are saved with the outputs and loaded back (``strict=True``) before checking, so the
check also fails when a parameter name changes, and does not depend on the order in which a
refactored module draws its random initialization.

Cases: tiny HRSAM with every attention variant (with and without Cycle-scan, fused
embedding and ``out_indices`` stage features), tiny HRSAM++ with the window variants, and
every attention variant and Cycle-scan module alone on one and on two token maps.
Each encoder case records the forward output and the gradient of every parameter.

Usage::

    python tools/analysis/behaviour_snapshot.py --save /tmp/snapshot.pt
    python tools/analysis/behaviour_snapshot.py --check /tmp/snapshot.pt
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, Tuple

import torch
from torch import Tensor, nn

import mmhrsam  # noqa: F401  (registers the models)
from mmhrsam.registry import MODELS

ATTENTION = ('GlobalAttention', 'FlashSwinAttention', 'KVPadSwinAttention', 'PlainSwinAttention',
             'DilatedAttention', 'MultiScaleFlashSwinAttention', 'MultiScaleKVPadSwinAttention')
TINY = dict(embed_dim=32, depth=4, num_heads=2, num_stages=2, window_size=4, pretrain_grid=6)
SCAN = dict(type='CycleScan', d_state=4)


def encoder_cases() -> Dict[str, dict]:
    """name -> backbone config."""
    cases = {}
    for attn in ATTENTION:
        cases[f'hrsam/{attn}'] = dict(type='HRSAM', attn_cfg=dict(type=attn), cycle_scan_cfg=SCAN, **TINY)
    cases['hrsam/no-scan'] = dict(type='HRSAM', cycle_scan_cfg=None, **TINY)
    cases['hrsam/out-indices'] = dict(type='HRSAM', cycle_scan_cfg=SCAN, out_indices=(0, 1), **TINY)
    for attn in ('FlashSwinAttention', 'KVPadSwinAttention', 'GlobalAttention'):
        cases[f'hrsam++/{attn}'] = dict(type='HRSAMPlusPlus', anchor_size=48, attn_cfg=dict(type=attn),
                                        cycle_scan_cfg=SCAN, ms_cycle_scan_cfg=dict(type='MultiScaleCycleScan',
                                                                                     d_state=4), **TINY)
    cases['hrsam++/out-indices'] = dict(cases['hrsam++/KVPadSwinAttention'], out_indices=(1, ))
    return cases


def mixer_cases() -> Dict[str, dict]:
    cases = {}
    for attn in ATTENTION:
        extra = dict(window_size=4, shift_size=2) if 'Swin' in attn else {}
        cases[f'mixer/{attn}'] = dict(type=attn, embed_dim=32, num_heads=2, **extra)
    cases['mixer/CycleScan'] = dict(SCAN, embed_dim=32)
    cases['mixer/MultiScaleCycleScan'] = dict(type='MultiScaleCycleScan', embed_dim=32, d_state=4)
    return cases


def call_mixer(module: nn.Module, x: Tensor, grids: Tuple[Tuple[int, int], ...], rope) -> Tensor:
    """Run a token mixer on (B, L, C) tokens of ``grids``, whichever entry point it has.

    Attention gets the grids. A Cycle-scan module gets the whole sequence as one (the
    snapshot's definition of the case; given the grids, a plain ``CycleScan`` now scans
    each grid alone, which the HRSAM++ encoder cases cover).
    """
    is_scan = 'CycleScan' in type(module).__name__
    if hasattr(module, 'forward_tokens'):  # before the restructuring
        return module.forward_tokens(x) if is_scan else module.forward_tokens(x, grids, rope)
    return module(x) if is_scan else module(x, grids, rope)


def run_encoder(model: nn.Module, seed: int) -> Dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn(2, 3, 100, 84, generator=gen)
    outs = model(img)
    record = {f'out{i}': o.detach().clone() for i, o in enumerate(outs)}
    loss = sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outs)
    loss.backward()
    for name, p in model.named_parameters():
        record[f'grad/{name}'] = p.grad.clone() if p.grad is not None else torch.zeros(0)
    return record


def run_mixer(module: nn.Module, seed: int) -> Dict[str, Tensor]:
    from mmhrsam.models.layers import AxialRoPE  # noqa: PLC0415  (path may move; imported when run)
    gen = torch.Generator().manual_seed(seed)
    rope = AxialRoPE(16)
    record = {}
    for key, grids in (('one', ((7, 6), )), ('two', ((7, 6), (3, 3)))):
        if key == 'two' and type(module).__name__ == 'PlainSwinAttention':
            continue
        x = torch.randn(2, sum(h * w for h, w in grids), 32, generator=gen, requires_grad=True)
        out = call_mixer(module, x, grids, rope)
        out.backward(torch.randn(out.shape, generator=gen))
        record[f'{key}/out'] = out.detach().clone()
        record[f'{key}/dx'] = x.grad.clone()
    return record


def snapshot(weights: Dict[str, Dict[str, Tensor]] = None) -> Dict[str, dict]:
    """name -> dict(state_dict=..., record=...); with ``weights`` the given state dicts are loaded."""
    result = {}
    cases = [(n, c, run_encoder) for n, c in encoder_cases().items()]
    cases += [(n, c, run_mixer) for n, c in mixer_cases().items()]
    for seed, (name, cfg, run) in enumerate(cases):
        torch.manual_seed(seed)
        model = MODELS.build(cfg)
        if weights is not None:
            model.load_state_dict(weights[name], strict=True)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        result[name] = dict(state_dict=state, record=run(model, seed))
    return result


def compare(saved: Dict[str, dict], now: Dict[str, dict]) -> int:
    failures = 0
    for name, entry in saved.items():
        got = now[name]['record']
        for key, ref in entry['record'].items():
            if key not in got or not torch.equal(ref, got[key]):
                failures += 1
                print(f'DIFFERENT {name} {key}')
        if set(got) != set(entry['record']):
            failures += 1
            print(f'DIFFERENT KEYS {name}: {sorted(set(got) ^ set(entry["record"]))}')
    total = sum(len(e['record']) for e in saved.values())
    print(f'{len(saved)} cases, {total} tensors, {failures} different')
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--save', metavar='PATH')
    group.add_argument('--check', metavar='PATH')
    args = parser.parse_args(argv)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # reductions in one fixed order
    if args.save:
        torch.save(snapshot(), args.save)
        print(f'saved {args.save}')
        return 0
    saved = torch.load(args.check)
    return 1 if compare(saved, snapshot({n: e['state_dict'] for n, e in saved.items()})) else 0


if __name__ == '__main__':
    sys.exit(main())
