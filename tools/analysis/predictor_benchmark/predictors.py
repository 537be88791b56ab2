"""The benchmarked predictors: labels, families and configs, and which options they have."""
from __future__ import annotations

import importlib.util
import inspect
import os
from typing import Dict, Tuple

from benchmark_common import resolve_label
from mmhrsam.apis import HRSAMPredictor

#: The repository root: the HRSAM configs below are relative to it.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
#: label -> (family, config): an mmhrsam config file, a segment_anything registry key or a
#: sam2 config name.
PREDICTORS: Dict[str, Tuple[str, str]] = {
    'HRSAM': ('hrsam', 'configs/hrsam/hrsam_vit-b_2048.py'),
    'HRSAM++': ('hrsam', 'configs/hrsam_plusplus/hrsam-plusplus_vit-b_2048.py'),
    'SAM-ViT-B': ('sam', 'vit_b'),
    'SAM-ViT-H': ('sam', 'vit_h'),
    'SAM2.1-B+': ('sam2', 'configs/sam2.1/sam2.1_hiera_b+.yaml'),
}
ALIASES = {'hrsamplusplus': 'HRSAM++', 'hrsampp': 'HRSAM++', 'sam-b': 'SAM-ViT-B', 'sam-h': 'SAM-ViT-H',
           'sam2': 'SAM2.1-B+', 'sam2.1': 'SAM2.1-B+', 'sam2.1-b+': 'SAM2.1-B+'}
#: The baselines' native input side (SAM's position embedding, SAM 2's config), and --tiny's.
BASELINE_SIZE, TINY_BASELINE_SIZE = 1024, 128
#: Precision labels of the rows.
SAM_PRECISIONS = {'bf16': 'bf16 autocast around set_image, decoder fp32', 'fp32': 'fp32'}


def resolve_model_name(name: str) -> str:
    """A predictor label from ``name`` (any case) or one of :data:`ALIASES` (argparse type)."""
    return resolve_label(name, PREDICTORS, ALIASES, 'predictor')


def hrsam_predictor_options() -> Dict[str, bool]:
    """Which of the newer HRSAMPredictor options this checkout has (feature detection).

    ``HRSAMPredictor`` is this module's global, looked up at call time, so that tests can
    substitute a predictor with other options.
    """
    init = inspect.signature(HRSAMPredictor.__init__).parameters
    predict = inspect.signature(HRSAMPredictor.predict).parameters
    return dict(precision='precision' in init, compile='compile' in init,
                decoder_precision='decoder_precision' in init, return_numpy='return_numpy' in predict)


def sam2_available() -> bool:
    """Whether the ``sam2`` package is importable."""
    return importlib.util.find_spec('sam2') is not None
