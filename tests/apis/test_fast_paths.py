"""The predictor's fast paths (autocast, torch.compile, CUDA graphs) against its eager fp32 path.

The CUDA tests compare the default CUDA predictor (bf16 autocast encoder, compiled, replayed
from CUDA graphs; fp32 decoder replayed from graphs) with the eager fp32 predictor on the
same weights, image and clicks; the CPU tests check the option handling and that the CPU
default is still the eager fp32 forward.
"""
import numpy as np
import pytest
import torch

from mmhrsam.apis import HRSAMPredictor
from mmhrsam.apis.compiled import CompiledOrEager
from mmhrsam.apis.encoder_runner import EncoderRunner, resolve_precision
from mmhrsam.registry import MODELS

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def tiny_models(seed=0):
    torch.manual_seed(seed)
    backbone = MODELS.build(dict(type='HRSAM', embed_dim=128, depth=4, num_heads=4, num_stages=2,
                                 cycle_scan_cfg=dict(type='CycleScan', d_state=16)))
    return backbone.eval(), MODELS.build(dict(type='SAMHead')).eval()


def test_cpu_default_is_eager_fp32():
    backbone, _ = tiny_models()
    runner = EncoderRunner(backbone, torch.device('cpu'))
    assert runner.mode == 'eager' and runner.autocast_dtype is None
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = backbone(x)[-1]
    assert torch.equal(runner(x), expected)


@pytest.mark.parametrize('kwargs, message', [
    (dict(precision='bf16'), 'needs a CUDA device'),
    (dict(precision='fp64'), 'precision must be'),
    (dict(compile=True), 'compile=True needs a CUDA device'),
    (dict(cuda_graph=True), 'cuda_graph=True needs a CUDA device'),
    (dict(compile='yes'), "compile must be 'auto', True or False"),
])
def test_cpu_rejects_gpu_only_options(kwargs, message):
    backbone, head = tiny_models()
    with pytest.raises(ValueError, match=message):
        HRSAMPredictor(backbone, head, target_size=128, device='cpu', **kwargs)


def test_resolve_precision():
    assert resolve_precision('auto', torch.device('cpu')) is None
    assert resolve_precision('auto', torch.device('cuda')) is torch.bfloat16
    assert resolve_precision('fp16', torch.device('cuda')) is torch.float16


def test_return_numpy_false_gives_the_same_mask_as_a_tensor():
    backbone, head = tiny_models()
    predictor = HRSAMPredictor(backbone, head, target_size=128, device='cpu')
    predictor.set_image(random_image(0, (90, 120, 3)))
    mask_np, logits_np, score_np = predictor.predict([[60, 40]], [1])
    mask_t, logits_t, score_t = predictor.predict([[60, 40]], [1], return_numpy=False)
    assert isinstance(mask_np, np.ndarray) and isinstance(mask_t, torch.Tensor)
    assert mask_t.dtype == torch.bool and np.array_equal(mask_t.numpy(), mask_np)
    full, _, _ = predictor.predict([[60, 40]], [1], return_logits=True, return_numpy=False)
    assert torch.equal(full > 0, mask_t)  # the mask is the thresholded full-resolution logits
    assert torch.equal(logits_np, logits_t) and score_np == score_t


def run_session(predictor, image, clicks):
    predictor.set_image(image)
    logits, out = None, []
    for n in range(1, len(clicks) + 1):
        points = np.array([c[:2] for c in clicks[:n]])
        labels = np.array([c[2] for c in clicks[:n]])
        mask, logits, score = predictor.predict(points, labels, prev_logits=logits)
        out.append((mask, logits.float().cpu(), score))
    return out


CLICKS = [(200, 150, 1), (50, 40, 0), (300, 200, 1), (120, 260, 0)]


def random_image(seed, shape=(300, 420, 3)):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def eager_cuda_predictor(backbone, head):
    """The reference: the plain eager fp32 path on the GPU."""
    return HRSAMPredictor(backbone.cuda(), head.cuda(), target_size=512, precision='fp32', compile=False,
                          cuda_graph=False, decoder_precision='fp32')


@cuda_only
def test_head_runner_replay_equals_eager_head():
    backbone, head = tiny_models()
    eager = eager_cuda_predictor(backbone, head)
    graphs = HRSAMPredictor(backbone, head, target_size=512, precision='fp32', compile=False,
                            decoder_precision='fp32')
    assert graphs.head_runner.mode == 'graph' and graphs.encoder.mode == 'graph'
    for image_seed in (1, 2):  # a second image: same graphs, new embedding copied in
        image = random_image(image_seed)
        for (m_e, l_e, s_e), (m_g, l_g, s_g) in zip(run_session(eager, image, CLICKS),
                                                    run_session(graphs, image, CLICKS)):
            torch.testing.assert_close(l_g, l_e, rtol=1e-4, atol=1e-4)  # same kernels, replayed
            assert abs(s_e - s_g) < 1e-4 and (m_e != m_g).mean() < 1e-4


@cuda_only
def test_default_cuda_path_against_eager_fp32():
    backbone, head = tiny_models()
    image = random_image(3)
    eager = eager_cuda_predictor(backbone, head)
    fast = HRSAMPredictor(backbone, head, target_size=512)
    assert fast.encoder.mode == 'compile+graph' and fast.encoder.autocast_dtype is torch.bfloat16
    for (m_e, l_e, s_e), (m_f, l_f, s_f) in zip(run_session(eager, image, CLICKS), run_session(fast, image, CLICKS)):
        # bf16 encoder: logits agree to ~1 % of their range, masks on all but boundary pixels
        scale = l_e.abs().max().item()
        assert (l_f - l_e).abs().max().item() < 0.05 * scale
        assert (m_e != m_f).mean() < 0.01
        assert abs(s_e - s_f) < 0.05
    assert fast.encoder.mode == 'compile+graph'  # compiled without falling back to eager


@cuda_only
def test_compiled_fp32_encoder_matches_eager():
    backbone, _ = tiny_models()
    backbone = backbone.cuda()
    x = torch.randn(1, 3, 512, 512, device='cuda')
    with torch.no_grad():
        expected = backbone(x)[-1]
    runner = EncoderRunner(backbone, torch.device('cuda'), precision='fp32', compile=True, cuda_graph=True)
    got = runner(x)
    torch.testing.assert_close(got, expected, rtol=2e-3, atol=2e-3)  # Inductor reorders fp32 sums
    got2 = runner(x * 0.5)  # the graph's static input is refreshed on every call
    with torch.no_grad():
        torch.testing.assert_close(got2, backbone(x * 0.5)[-1], rtol=2e-3, atol=2e-3)


@cuda_only
def test_cast_weights_copy_is_bit_identical_to_autocast():
    backbone, _ = tiny_models()
    backbone = backbone.cuda()
    x = torch.randn(1, 3, 256, 256, device='cuda')
    with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
        expected = backbone(x)[-1]
    runner = EncoderRunner(backbone, torch.device('cuda'), precision='bf16', compile=False, cuda_graph=False)
    assert runner.backbone is not backbone and backbone.patch_embed.proj.weight.dtype == torch.float32
    assert torch.equal(runner(x), expected)


@pytest.fixture
def chunked_scan():
    from mmhrsam.ops import get_backends, set_backends
    before = get_backends()
    set_backends(scan='chunked')  # 'auto' on a CPU would try importing mamba_ssm inside the forward
    yield
    set_backends(**before)


def test_compile_traces_the_whole_encoder_after_an_eager_warm_up(eager_backend, chunked_scan):
    """Dynamo (with its eager backend, so it runs on CPU) traces the encoder in one graph once
    an eager forward has built the per-size tables; traced cold it cannot (data-dependent)."""
    backbone, _ = tiny_models()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        expected = backbone(x)[-1]
    cold = torch.compile(backbone, fullgraph=True, dynamic=False)
    with pytest.raises(Exception), torch.no_grad():
        cold(torch.randn(1, 3, 320, 320))  # a size no forward has seen
    torch._dynamo.reset()
    runner = EncoderRunner(backbone, torch.device('cpu'))
    runner.step = CompiledOrEager(runner.backbone, True, True, dynamic=False)  # errors propagate, no fallback
    got = runner(x)
    assert runner.use_compile and runner.mode == 'compile'
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_head_runner_serves_interleaved_predictors(monkeypatch):
    """Predictors that share one HeadRunner (the annotation app's per-image copies) each get
    their own image's masks, clicks interleaved. A stand-in for the CUDA capture re-runs the
    captured step on the graphs' static buffers, as a replay does, so the buffer handling is
    tested on the CPU: a stale embedding or click buffer would give the other image's mask."""
    import copy

    from mmhrsam.apis import head_runner

    def fake_capture(fn, device, pool=None):
        fn()
        return None, fn

    monkeypatch.setattr(head_runner, 'capture_cuda_graph', fake_capture)
    backbone, head = tiny_models()
    eager = HRSAMPredictor(backbone, head, target_size=128, device='cpu')
    shared = copy.copy(eager)
    shared.head_runner = head_runner.HeadRunner(head, torch.device('cpu'), compile=False, cuda_graph=False)
    shared.head_runner.use_graph = True  # the replay stand-in above plays the CUDA graph
    images = [random_image(seed, (90, 120, 3)) for seed in (4, 5)]
    clicks = [[(60, 40, 1)], [(60, 40, 1), (20, 70, 0)]]
    graph_preds = [copy.copy(shared), copy.copy(shared)]
    for predictor, image in zip(graph_preds, images):
        predictor.set_image(image)
    expected = {}
    for i, image in enumerate(images):
        eager.set_image(image)
        logits = None
        for n, cl in enumerate(clicks):
            mask, logits, score = eager.predict([c[:2] for c in cl], [c[2] for c in cl], logits)
            expected[i, n] = (mask, logits, score)
    logits = [None, None]
    for n, cl in enumerate(clicks):
        for i, predictor in enumerate(graph_preds):  # image 0, image 1, image 0, ...
            mask, logits[i], score = predictor.predict([c[:2] for c in cl], [c[2] for c in cl], logits[i])
            want_mask, want_logits, want_score = expected[i, n]
            assert np.array_equal(mask, want_mask) and torch.equal(logits[i], want_logits) and score == want_score
    assert len(shared.head_runner._graphs) == 2  # (shape, 1 click, no prompt), (shape, 2 clicks, prompt)


def test_encoder_compile_failure_falls_back_and_stays_eager_after_reset(eager_backend):
    class BreaksTheGraph(torch.nn.Module):
        def forward(self, x):
            torch._dynamo.graph_break()  # fullgraph compilation fails
            return (x * 2, )

    runner = EncoderRunner(BreaksTheGraph(), torch.device('cpu'))
    runner.step = CompiledOrEager(runner.backbone, 'auto', True, dynamic=False)  # compile='auto' is eager on CPU
    x = torch.ones(1, 3, 4, 4)
    with pytest.warns(UserWarning, match='running it eagerly'):
        assert torch.equal(runner(x), x * 2)
    assert runner.mode == 'eager'
    runner.reset()
    assert not runner.use_compile and torch.equal(runner(x), x * 2)
