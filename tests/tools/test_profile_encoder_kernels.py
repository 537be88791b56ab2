"""profile_encoder_kernels.py's grouping of kernel names (the profiling itself needs a GPU)."""
import pytest
import torch

from tool_loader import load_tool

pk = load_tool('tools/analysis/profile_encoder_kernels.py', 'profile_encoder_kernels')

# Kernel names as an H200 profile of HRSAM's compiled forward printed them (run D), with the kind
# each belongs to, decided by reading what the kernel computes.
NAMED = [
    ('nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_bias_TNT', 'GEMM'),
    ('sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize64x64x32', 'GEMM'),
    ('triton_poi_fused_gelu_view_10', 'GELU (fused)'),
    ('_fwd_chunk_out', 'Cycle-scan (Triton)'),
    ('_fwd_chunk_state', 'Cycle-scan (Triton)'),
    ('_cycle_carry', 'Cycle-scan (Triton)'),
    ('cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64', 'attention (SDPA)'),
    ('triton_poi_fused__scaled_dot_product_cudnn_attention__to_copy_add_clone_cos_expand_mul',
     'RoPE + window gathers (fused)'),
    ('triton_red_fused__to_copy_mul_native_layer_norm_silu_split_transpose_view_28', 'LayerNorm + residual (fused)'),
    ('triton_poi_fused__to_copy_14', 'other generated element-wise'),
    ('Memset (Device)', 'copies and memsets'),
    ('void at::native::vectorized_elementwise_kernel<4>', 'other'),
]


@pytest.mark.parametrize('name, kind', NAMED)
def test_kernel_kinds(name, kind):
    assert pk.kernel_kind(name) == kind


def test_summary_divides_by_forwards_and_ranks():
    kernels = [('nvjet_a', 100.0), ('nvjet_a', 300.0), ('_fwd_chunk_out', 50.0), ('triton_poi_fused_gelu_1', 30.0),
               ('mystery', 20.0)]
    out = pk.summarize(kernels, forwards=2, top=2)
    assert out['total_ms'] == pytest.approx(0.25)  # 500 us over 2 forwards
    assert out['by_kind_ms'] == pytest.approx({'Cycle-scan (Triton)': 0.025, 'GELU (fused)': 0.015, 'GEMM': 0.2,
                                               'other': 0.01})
    assert list(out['by_kind_ms']) == ['Cycle-scan (Triton)', 'GELU (fused)', 'GEMM', 'other']  # table order
    assert out['top'] == [['nvjet_a', 'GEMM', pytest.approx(0.2), 1.0],
                          ['_fwd_chunk_out', 'Cycle-scan (Triton)', pytest.approx(0.025), 0.5]]


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU message')
def test_refuses_without_a_gpu():
    with pytest.raises(SystemExit, match='needs a GPU'):
        pk.main(['--models', 'HRSAM'])
