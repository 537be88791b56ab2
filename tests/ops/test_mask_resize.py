"""Triton mask post-processing against ``postprocess_logits`` (PyTorch's bilinear interpolation).

The kernels run in Triton's CPU interpreter: ``test_interpreter_suite`` runs this file again
in a subprocess with TRITON_INTERPRET=1 (tests/ops/triton_interpreter.py). A CUDA test compares
on the GPU at the predictor's sizes.
"""
import pytest
import torch

from mmhrsam.ops import mask_resize
from mmhrsam.structures.image_geometry import get_preprocess_shape, postprocess_logits
from triton_interpreter import run_interpreter_suite

interp = pytest.mark.skipif(not mask_resize.INTERPRETED,
                            reason='runs in the TRITON_INTERPRET=1 subprocess of test_interpreter_suite')
cuda_only = pytest.mark.skipif(not torch.cuda.is_available() or mask_resize.triton is None or mask_resize.INTERPRETED,
                               reason='needs CUDA (and compiled kernels: the interpreter would run 12-MP grids in Python)')


def test_interpreter_suite():
    """This file's ``interp`` tests in a fresh process with TRITON_INTERPRET=1."""
    if mask_resize.INTERPRETED:
        pytest.skip('already the interpreter process')
    run_interpreter_suite(__file__)


def check_against_pytorch(low_res, pad, original):
    input_size = get_preprocess_shape(*original, pad)
    want = postprocess_logits(low_res, input_size, pad, original)[0, 0]
    logits = mask_resize.logits_to_original_size(low_res, input_size, pad, original, as_mask=False)
    mask = mask_resize.logits_to_original_size(low_res, input_size, pad, original, as_mask=True)
    assert logits.shape == mask.shape == tuple(original) and mask.dtype == torch.bool
    torch.testing.assert_close(logits, want, rtol=1e-5, atol=1e-5)
    decided = want.abs() > 1e-4  # a different contraction of the multiply-adds cannot flip these
    assert torch.equal(mask[decided], want[decided] > 0)
    assert decided.float().mean() > 0.99


@interp
@pytest.mark.parametrize('original', [(45, 60), (60, 45), (37, 101), (64, 64), (130, 170)])
def test_interpreted_kernels_match_pytorch(original):
    """Up- and downsampling, landscape / portrait / square, sizes that do not divide."""
    gen = torch.Generator().manual_seed(sum(original))
    check_against_pytorch(torch.randn(1, 1, 32, 32, generator=gen), 128, original)


@cuda_only
@pytest.mark.parametrize('low, pad, original', [(512, 2048, (3000, 4000)), (512, 2048, (4000, 3000)),
                                                (256, 1024, (683, 1024)), (1024, 4096, (2000, 1500))])
def test_cuda_kernels_match_pytorch(low, pad, original):
    gen = torch.Generator().manual_seed(low + original[0])
    check_against_pytorch(torch.randn(1, 1, low, low, generator=gen).cuda() * 4, pad, original)


def test_cpu_tensor_is_refused_outside_the_interpreter():
    if mask_resize.triton is None or mask_resize.INTERPRETED:
        pytest.skip('needs triton, outside the interpreter')
    assert 'CUDA' in mask_resize.mask_resize_unavailable(torch.zeros(1, 1, 4, 4))
    with pytest.raises(RuntimeError, match='CUDA'):
        mask_resize.logits_to_original_size(torch.zeros(1, 1, 4, 4), (16, 16), 16, (8, 8), True)
