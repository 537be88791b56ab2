"""CUDA-graph capture of SAM's encoders in tools/analysis/benchmark_encoder.py.

segment_anything's relative-position code builds its index tensors with ``torch.arange``
and no device, i.e. on the CPU, then indexes a table on the model's device: a host-to-device
copy, which CUDA graph capture rejects. The benchmark runs such forwards with the model's
device as the default device. Without a GPU, the meta device stands in for it: the test
records the device of every tensor an operator creates during a tiny SAM ViT forward.
"""
import os

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mmhrsam.models  # noqa: F401
from mmhrsam.registry import MODELS
from tool_loader import load_tool

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def load_benchmark():
    return load_tool('tools/analysis/benchmark_encoder.py', 'benchmark_encoder')


class DeviceRecorder(TorchDispatchMode):
    """Names of the operators whose tensor outputs are on the CPU."""

    def __init__(self):
        super().__init__()
        self.cpu_ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else (out, )
        if any(isinstance(o, torch.Tensor) and o.device.type == 'cpu' for o in outs):
            self.cpu_ops.append(str(func))
        return out


TINY = dict(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1, ))


@pytest.mark.parametrize('cfg', [dict(type='SAMViT', arch=TINY, img_size=64),
                                 # SAM's window blocks (dilated blocks build their index maps from
                                 # data, which the meta device has not; they are HRSAM's code,
                                 # whose graph capture works)
                                 dict(type='SAMLightening', img_size=64,
                                      arch=dict(embed_dim=32, depth=2, num_heads=2,
                                                attn_pattern=('window', 'global')))])
def test_sam_forward_makes_no_host_tensor_on_default_device(cfg):
    bench = load_benchmark()
    meta = torch.device('meta')
    with meta:
        model = MODELS.build(cfg).eval()
    x = torch.empty(1, 3, 64, 64, device=meta)
    fn = bench.make_forward(model, x, 'fp32', meta)

    with DeviceRecorder() as plain:
        fn()
    # the reason for the fix: segment_anything creates CPU index tensors inside the forward
    assert any('arange' in op for op in plain.cpu_ops), plain.cpu_ops

    with DeviceRecorder() as fixed:
        bench.on_default_device(fn, meta)()
    assert fixed.cpu_ops == []


def test_sam_encoders_are_captured_on_default_device():
    bench = load_benchmark()
    flagged = {name for name, enc in bench.ENCODERS.items() if enc.host_factories}
    assert flagged == {'SAM-ViT-B', 'SAM-ViT-H', 'SAM-Lightening'}
