"""The click path's compilation: one compiled graph for every click count, and the eager fallback."""
import pytest
import torch
from torch._dynamo.utils import counters

from mmhrsam.apis.compiled import CompiledOrEager, float32_matmul_precision
from mmhrsam.apis.head_runner import HeadRunner, resolve_decoder_precision
from mmhrsam.registry import MODELS


def graphs_compiled():
    return counters['stats']['unique_graphs']


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
    pe = head.dense_pe((16, 16))
    before = graphs_compiled()
    for n in range(2, 8):
        points, labels = clicks(n)
        for got, want in zip(runner(features, pe, points, labels, prev), head(features, points, labels, prev)):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert graphs_compiled() - before == 1  # clicks 2..7 with a mask prompt: one graph
    runner(features, pe, *clicks(1), None)
    runner(features, pe, *clicks(5), None)
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


def test_decoder_precision_options():
    assert resolve_decoder_precision('auto', torch.device('cpu')) == 'fp32'
    assert resolve_decoder_precision('auto', torch.device('cuda')) == 'tf32'
    with pytest.raises(ValueError, match='needs a CUDA device'):
        resolve_decoder_precision('tf32', torch.device('cpu'))
    with pytest.raises(ValueError, match="'auto', 'fp32' or 'tf32'"):
        resolve_decoder_precision('bf16', torch.device('cuda'))
    before = torch.get_float32_matmul_precision()
    inside = 'high' if before != 'high' else 'highest'  # differs from the setting it must restore
    with float32_matmul_precision(inside):
        assert torch.get_float32_matmul_precision() == inside
    assert torch.get_float32_matmul_precision() == before


def test_max_graphs_is_checked():
    with pytest.raises(ValueError, match='max_graphs must be >= 1'):
        HeadRunner(torch.nn.Identity(), torch.device('cpu'), compile=False, cuda_graph=False, max_graphs=0)
