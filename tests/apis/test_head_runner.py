"""The click path's compilation: one compiled graph for every click count, the mask
post-processing compiled once for every image size, and the eager fallback."""
import functools
import shutil

import pytest
import torch
from torch._dynamo.utils import counters

from mmhrsam.apis.compiled import CompiledOrEager, float32_matmul_precision
from mmhrsam.apis.head_runner import HeadRunner, resolve_decoder_precision
from mmhrsam.apis.predictor import mask_at_original_size
from mmhrsam.registry import MODELS
from mmhrsam.structures.image_geometry import get_preprocess_shape, postprocess_logits


def graphs_compiled():
    return counters['stats']['unique_graphs']


@pytest.fixture
def eager_backend(monkeypatch):
    """Dynamo with its eager backend: traces and guards as for Inductor, runs on the CPU."""
    monkeypatch.setattr(torch, 'compile', functools.partial(torch.compile, backend='eager'))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def clicks(n, seed=0):
    gen = torch.Generator().manual_seed(seed + n)
    return torch.rand(1, n, 2, generator=gen) * 250, (torch.rand(1, n, generator=gen) > 0.4).long()


@torch.no_grad()
def test_one_compilation_serves_every_click_count(eager_backend):
    torch.manual_seed(0)
    head = MODELS.build(dict(type='SAMHead')).eval()
    runner = HeadRunner(head, torch.device('cpu'), compile=False, cuda_graph=False)
    runner.step = CompiledOrEager(head, True, True, dynamic=None)  # compile=True is CUDA-only in the API
    features, prev = torch.randn(1, 256, 16, 16), torch.randn(1, 1, 64, 64)
    before = graphs_compiled()
    for n in range(2, 8):
        points, labels = clicks(n)
        for got, want in zip(runner(features, points, labels, prev), head(features, points, labels, prev)):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert graphs_compiled() - before == 1  # clicks 2..7 with a mask prompt: one graph
    runner(features, *clicks(1), None)
    runner(features, *clicks(5), None)
    assert graphs_compiled() - before == 3  # one click (specialized) and no mask prompt: one more each


def test_compile_failure_falls_back_under_auto_only(eager_backend):
    def breaks_the_graph(x):
        torch._dynamo.graph_break()
        return x + 1

    x = torch.ones(3)
    auto = CompiledOrEager(breaks_the_graph, 'auto', True, dynamic=False)
    with pytest.warns(UserWarning, match='running it eagerly'):
        assert torch.equal(auto(x), x + 1)
    assert not auto.enabled and torch.equal(auto(x), x + 1)
    strict = CompiledOrEager(breaks_the_graph, True, True, dynamic=False)
    with pytest.raises(Exception):
        strict(x)


@pytest.mark.skipif(shutil.which('g++') is None and shutil.which('c++') is None,
                    reason="Inductor's CPU code needs a C++ compiler")
@torch.no_grad()
def test_compiled_post_processing_equals_eager_for_every_image_size():
    """Inductor's generated code (on the CPU here) against the eager interpolation, over
    image sizes that arrive one after the other, as in an annotation session."""
    torch._dynamo.reset()
    post = CompiledOrEager(mask_at_original_size, True, True, dynamic=True)
    low_res = torch.randn(1, 1, 128, 128)
    before = graphs_compiled()
    for original in ((300, 400), (301, 403), (512, 333), (97, 1000)):
        input_size = get_preprocess_shape(*original, 512)
        want = postprocess_logits(low_res, input_size, 512, original)[0, 0]
        # Inductor may contract the interpolation's multiply-adds differently: fp32 rounding
        torch.testing.assert_close(post(low_res, input_size, 512, None, original, True), want,
                                   rtol=1e-5, atol=1e-5)
        mask = post(low_res, input_size, 512, None, original, False)
        decided = want.abs() > 1e-5  # pixels whose sign no rounding can flip
        assert mask.shape == want.shape and torch.equal(mask[decided], want[decided] > 0)
    # Not one per size: one per output kind (mask, logits) and orientation (the long side
    # fills the padded square: a guard on which one).
    assert graphs_compiled() - before <= 4
    compiled = graphs_compiled()
    for original in ((640, 480), (480, 640)):
        input_size = get_preprocess_shape(*original, 512)
        post(low_res, input_size, 512, None, original, False)
    assert graphs_compiled() == compiled
    torch._dynamo.reset()


def test_decoder_precision_options():
    assert resolve_decoder_precision('auto', torch.device('cpu')) == 'fp32'
    assert resolve_decoder_precision('auto', torch.device('cuda')) == 'tf32'
    with pytest.raises(ValueError, match='needs a CUDA device'):
        resolve_decoder_precision('tf32', torch.device('cpu'))
    with pytest.raises(ValueError, match="'auto', 'fp32' or 'tf32'"):
        resolve_decoder_precision('bf16', torch.device('cuda'))
    before = torch.get_float32_matmul_precision()
    with float32_matmul_precision('high'):
        assert torch.get_float32_matmul_precision() == 'high'
    assert torch.get_float32_matmul_precision() == before
