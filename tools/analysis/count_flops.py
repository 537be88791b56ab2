"""FLOPs and parameters of the image encoders of model configs at several input sizes.

Counting method (what ``docs/results/flops.json`` and the metafiles report):

* PyTorch's dispatcher-level counter, :class:`torch.utils.flop_counter.FlopCounterMode`,
  sees every matrix product the forward runs (``mm``, ``addmm``, ``bmm``, convolutions,
  SDPA kernels), including those inside segment_anything's code and ``einsum``. A
  multiply-add counts as **two** FLOPs. Element-wise work (norms, activations, softmax,
  residual adds, RoPE, interpolation) is not counted, as in fvcore / MMEngine.
* The forward runs on *fake* tensors (``FakeTensorMode``): shapes only, no values and no
  memory, so SAM ViT-H at 4096² (16 x 65536² attention scores) is counted on a laptop in
  seconds. The models are built on the meta device and called with fake parameters
  (``torch.func.functional_call``). The attention index maps are data (built from the grid
  shape), so they are built as real CPU tensors, outside the fake mode.
* Added counts for what the counter misses: (1) the CPU flash-attention kernel that
  ``F.scaled_dot_product_attention`` dispatches to on CPU (``_scaled_dot_product_flash_attention_for_cpu``)
  has no formula in PyTorch's counter (the CUDA kernels have): it gets the same formula,
  ``4 * B * heads * Lq * Lk * d`` (QK^T and PV); (2) the Cycle-scan's selective scan runs in
  a Triton kernel (GPU) or chunked loops (CPU), opaque or element-wise to any counter: it is
  replaced by a shape-only stand-in that adds the analytic count
  ``batch * R * L * C * (7 * N + 5)`` (R sequence copies, L tokens, C channels, N states):
  per (token, channel, state) the products dt*A and (dt*x)*B, exp, the state update
  h = dA*h + dBx (2) and the read-out C*h with its sum (2); per (token, channel) dt*x,
  the skip D*x + y (2) and the gamma-weighted sum of copies (2). Unlike the rest of the
  count this includes element-wise operations, since the scan is nothing else.

MMEngine's ``FlopAnalyzer`` (fvcore's method) traces the model with ``torch.jit`` on real
tensors; it counts a multiply-add as *one* FLOP and has no handle for
``aten::scaled_dot_product_attention`` (it lists it as unsupported and skips it), so it
would leave out all of HRSAM's attention. It cannot trace on meta / fake tensors, and SAM
ViT-H at 4096² would need over 256 GiB for the attention scores; hence the counter above.
``tests/configs/test_metafiles.py`` checks it against MMEngine's count on a model both see
completely (2 x MMEngine's multiply-adds).

Parameters are counted on the built model (``sum(p.numel())``), for the whole interactive
model of the config (encoder + SAM's prompt encoder and mask decoder) and for the encoder.
SAM's ViTs have a position embedding and relative-position tables of a fixed size: they are
counted at each size built for that size (``img_size=S``, as the encoder benchmark does).

Examples::

    python tools/analysis/count_flops.py                        # every config of configs/*/metafile.yml
    python tools/analysis/count_flops.py configs/hrsam/hrsam_vit-b_1024.py --sizes 1024 2048
"""
from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import sys
import time
from contextlib import ExitStack
from typing import Dict, List, Optional, Sequence
from unittest import mock

import torch
import yaml
from mmengine.config import Config
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmark_common

import mmhrsam.models  # noqa: E402,F401  (registers the models)
from benchmark_common import dump_json  # noqa: E402
from mmhrsam.models.attention.base import FlexibleLocalAttention  # noqa: E402
from mmhrsam.models.layers import cycle_scan as cycle_scan_module  # noqa: E402
from mmhrsam.registry import MODELS  # noqa: E402

#: FLOPs per (token copy, channel, state) and per (token copy, channel) of the analytic scan count.
SCAN_FLOPS_PER_STATE, SCAN_FLOPS_PER_CHANNEL = 7, 5


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """PyTorch's SDPA formula for the CPU flash kernel (the counter only has the CUDA ones)."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


CUSTOM_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}


class ScanCounter:
    """Stand-in for ``cycle_selective_scan``: output of the right shape, analytic FLOPs."""

    def __init__(self):
        self.flops = 0

    def __call__(self, u, delta, A, B, C, D, delta_bias, gamma, delta_softplus=True, backend='auto'):
        batch, channels, length = u.shape  # (B, C, L): one copy; gamma (C, R) weights R copies
        states, copies = A.shape[1], gamma.shape[1]
        self.flops += batch * copies * length * channels * (SCAN_FLOPS_PER_STATE * states + SCAN_FLOPS_PER_CHANNEL)
        return torch.empty_like(u)


def _partition_outside_fake_mode(original):

    def partition(self, grids, device):
        with unset_fake_temporarily():  # index maps are data: build them as real CPU tensors
            return original(self, grids, device)

    return partition


def encoder_cfg(model_cfg: dict, size: int) -> dict:
    """The encoder config of an interactive model config, for ``size``² inputs."""
    cfg = dict(model_cfg['backbone'])
    if cfg['type'] == 'SAMViT':  # fixed-size position embedding: build for the size
        cfg['img_size'] = size
    return cfg


def count_encoder(cfg: dict, size: int) -> Dict:
    """FLOPs of one forward of the encoder ``cfg`` on a (1, 3, size, size) image.

    Returns:
        dict: ``flops`` (total), ``by_operator`` (counted by the counter), ``scan_flops``
        (analytic, included in the total), ``seconds`` (time taken to count).
    """
    t0 = time.perf_counter()
    with torch.device('meta'):
        model = MODELS.build(cfg).eval()
    scan = ScanCounter()
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(FlexibleLocalAttention, 'partition',
                                              _partition_outside_fake_mode(FlexibleLocalAttention.partition)))
        stack.enter_context(mock.patch.object(cycle_scan_module, 'cycle_selective_scan', scan))
        stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
        state = {name: torch.empty(t.shape, dtype=t.dtype)
                 for name, t in itertools.chain(model.named_parameters(), model.named_buffers())}
        image = torch.empty(1, 3, size, size)
        counter = FlopCounterMode(display=False, custom_mapping=CUSTOM_FORMULAS)
        with torch.no_grad(), counter:
            functional_call(model, state, (image, ))
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts()['Global'].items()}
    return dict(flops=counter.get_total_flops() + scan.flops, by_operator=by_op, scan_flops=scan.flops,
                seconds=round(time.perf_counter() - t0, 1))


def count_parameters(model_cfg: dict) -> Dict[str, int]:
    """Parameters of the whole interactive model and of its encoder (built on the meta device)."""
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    return dict(params=sum(p.numel() for p in model.parameters()),
                encoder_params=sum(p.numel() for p in model.backbone.parameters()))


def metafile_configs(root: str = ROOT) -> List[str]:
    """Configs named in ``configs/*/metafile.yml``, in file order."""
    configs = []
    for path in sorted(glob.glob(os.path.join(root, 'configs', '*', 'metafile.yml'))):
        with open(path) as f:
            configs += [m['Config'] for m in yaml.safe_load(f)['Models']]
    return list(dict.fromkeys(configs))


def count_config(config: str, sizes: Sequence[int], cache: Dict[str, Dict]) -> Dict:
    """Parameters and per-size encoder FLOPs of one config (encoders counted once per config)."""
    model_cfg = Config.fromfile(os.path.join(ROOT, config)).model.to_dict()
    result = dict(encoder=model_cfg['backbone']['type'], **count_parameters(model_cfg), flops={})
    for size in sizes:
        cfg = encoder_cfg(model_cfg, size)
        key = json.dumps(cfg, sort_keys=True) + f'@{size}'
        if key not in cache:
            cache[key] = count_encoder(cfg, size)
        result['flops'][str(size)] = cache[key]
    return result


METHOD = ('torch.utils.flop_counter.FlopCounterMode on fake tensors (shapes only); a multiply-add = 2 FLOPs; '
          'matrix products, convolutions and SDPA counted, element-wise ops not; added: a formula for the CPU '
          'flash-attention kernel (same as the CUDA kernels), and the selective scan of Cycle-scan counted '
          'analytically as batch*R*L*C*(7N+5) (element-wise included); image encoder only, batch 1; SAM ViTs '
          'built with img_size = input size. See tools/analysis/count_flops.py.')


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='*', help='configs (default: every config of configs/*/metafile.yml)')
    parser.add_argument('--sizes', type=int, nargs='+', default=[1024, 2048, 4096], help='square input sides')
    parser.add_argument('--out', default='docs/results/flops.json', help='JSON output')
    args = parser.parse_args(argv)
    configs = args.configs or metafile_configs()
    results, cache = {}, {}
    for config in configs:
        results[config] = count_config(os.path.relpath(os.path.abspath(config), ROOT), args.sizes, cache)
        gflops = '  '.join(f"{s}²: {r['flops'] / 1e9:10.1f}" for s, r in results[config]['flops'].items())
        print(f"{config:<90} {results[config]['params'] / 1e6:7.2f} M  GFLOPs {gflops}", flush=True)
    out = dict(method=METHOD, torch=torch.__version__, sizes=args.sizes, models=results)
    dump_json(args.out, out)
    print(f'wrote {args.out}')
    return out


if __name__ == '__main__':
    main()
