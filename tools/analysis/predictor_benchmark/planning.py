"""The run plan (cases, the checked ones first), the fixed click sequence and the noise images."""
from __future__ import annotations

import argparse
import math
from typing import List, NamedTuple, Tuple

import numpy as np
import torch

from .predictors import BASELINE_SIZE, PREDICTORS, TINY_BASELINE_SIZE, sam2_available

#: Run order of the cases the target checks need; the other cases follow in --models x --sizes order.
KEY_CASES = (('HRSAM', 2048), ('SAM-ViT-H', 1024), ('SAM2.1-B+', 1024), ('HRSAM++', 2048))


class Case(NamedTuple):
    model: str
    size: int
    precision: str  # 'default' (HRSAM: the predictor's, or --hrsam-precision), or the baselines' 'bf16' / 'fp32'
    skip: str = ''


def plan(args: argparse.Namespace) -> List[Case]:
    """Every case, the ones the target checks need first (:data:`KEY_CASES`)."""
    cuda = torch.device(args.device).type == 'cuda'
    baseline = TINY_BASELINE_SIZE if args.tiny else BASELINE_SIZE
    cases = []
    for name in args.models:
        family = PREDICTORS[name][0]
        if family == 'hrsam':
            cases += [Case(name, size, 'default') for size in args.sizes]
            continue
        cases.append(Case(name, baseline, 'bf16' if cuda else 'fp32'))
        if family == 'sam2':
            skip = ('sam2 not installed' if not sam2_available()
                    else 'no tiny SAM 2 build (--tiny)' if args.tiny else '')
            cases[-1] = cases[-1]._replace(skip=skip)
        elif args.sam_fp32 and cuda:
            cases.append(Case(name, baseline, 'fp32'))
    rank = {key: i for i, key in enumerate(KEY_CASES)}

    def order(case: Case) -> Tuple[int, int]:  # key cases, the rest as listed, then fp32 SAM (ViT-H first)
        if case.precision == 'fp32':
            return 2, int(case.model != 'SAM-ViT-H')
        return (0, rank[case.model, case.size]) if (case.model, case.size) in rank else (1, 0)

    return sorted(cases, key=order)  # stable: equal keys keep their order


def click_sequence(n: int, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
    """A fixed sequence of ``n`` clicks inside a ``width`` x ``height`` image.

    Returns:
        tuple: points (n, 2) float64 pixel (x, y) on a golden-angle spiral around the centre
        (within 40 % of the half-sides), labels (n,) int64 alternating 1, 0, 1, ...
    """
    k = np.arange(n)
    radius = 0.4 * np.sqrt((k + 0.5) / n)
    angle = k * math.pi * (3 - math.sqrt(5))
    x = np.floor(width / 2 + radius * (width / 2) * np.cos(angle))
    y = np.floor(height / 2 + radius * (height / 2) * np.sin(angle))
    points = np.stack([np.clip(x, 0, width - 1), np.clip(y, 0, height - 1)], axis=1)
    return points, (k % 2 == 0).astype(np.int64)


def make_images(count: int, width: int, height: int, seed: int) -> List[np.ndarray]:
    """``count`` different (height, width, 3) RGB uint8 noise images."""
    return [np.random.default_rng(seed + i).integers(0, 256, (height, width, 3), dtype=np.uint8)
            for i in range(count)]
